// The endpoints pages' script (loaded after app.js): shows only the chosen type's fields
// (the others hidden and disabled, so they are not sent), sends secrets as typed and
// never "***" (an empty secret keeps the stored one: the API's rule on a replace), and
// puts a connection test's diagnosis into words.
'use strict';

(() => {
  const FO = window.FO;

  // What each problem of a failed test is, in words.
  const PROBLEMS = {
    invalid_config: 'The settings are not valid',
    dns: 'The host name does not resolve',
    connection_refused: 'The connection failed',
    timeout: 'No answer in time',
    tls: 'TLS failed',
    authentication: 'Authentication failed',
    host_key_mismatch: 'The host key does not match',
    permission_denied: 'Permission denied',
    not_found: 'Not found',
    other: 'The test failed',
  };

  function deletePath(target, path) {
    const keys = path.split('.');
    const parent = keys.slice(0, -1).reduce((here, key) => (here && typeof here === 'object' ? here[key] : undefined), target);
    if (parent && typeof parent === 'object') delete parent[keys[keys.length - 1]];
  }

  // data-when="type=sftp smb": shown only while field `type` is sftp or smb; every field
  // under a hidden one is disabled.
  function toggle(form) {
    form.querySelectorAll('[data-when]').forEach((part) => {
      const [name, values] = part.dataset.when.split('=');
      const field = form.elements.namedItem(name);
      part.hidden = !(field && values.split(' ').includes(field.value));
    });
    for (const field of form.elements) {
      if (field instanceof HTMLFieldSetElement || field.type === 'submit') continue;
      field.disabled = Boolean(field.closest('[data-when][hidden]'));
    }
    const port = form.elements.namedItem('port');
    const type = form.elements.namedItem('type');
    if (port && type) port.placeholder = type.value === 'smb' ? '445' : '22';
  }

  // The body the form sends: secrets exactly as typed (untrimmed), left out when empty or
  // "***" (the stored one is kept), null for an optional secret the admin removes.
  FO.prepare.endpoint = (body, form) => {
    form.querySelectorAll('[data-secret]').forEach((field) => {
      deletePath(body, field.name);
      if (!field.disabled && field.value !== '' && field.value.trim() !== '***') FO.setPath(body, field.name, field.value);
    });
    form.querySelectorAll('[data-clears]').forEach((box) => {
      if (box.checked && !box.disabled) FO.setPath(body, box.dataset.clears, null);
    });
    return body;
  };

  // The answer of POST /api/v1/endpoints/{name}/test, in words, in #test-result.
  FO.handlers.endpointTest = (answer, button) => {
    const box = document.getElementById('test-result');
    const scope = button.closest('[data-actions]');
    const output = scope && scope.querySelector('[data-result]');
    if (output) { output.textContent = ''; output.classList.remove('error', 'ok'); }
    if (!box) return;
    box.replaceChildren();
    box.dataset.outcome = answer.ok ? 'ok' : 'failed';
    const title = answer.ok ? 'The connection works' : (PROBLEMS[answer.problem] || PROBLEMS.other);
    box.append(FO.el('strong', title, { class: answer.ok ? 'ok' : 'error' }));
    box.append(FO.el('p', answer.message));
    if (answer.warning) box.append(FO.el('p', `Note: ${answer.warning}`, { class: 'warn' }));
    box.append(FO.el('p', `Tested at ${new Date().toLocaleTimeString()}.`, { class: 'hint' }));
  };

  const form = document.getElementById('endpoint-form');
  if (form) {
    form.addEventListener('change', (event) => {
      if (event.target instanceof HTMLSelectElement) toggle(form);
    });
    toggle(form);
  }

  // The probe checkbox sets ?write_probe=false on the test's call.
  const probe = document.getElementById('test-write-probe');
  const test = document.getElementById('test-button');
  if (probe && test) {
    probe.addEventListener('change', () => {
      test.dataset.api = `POST ${test.dataset.testPath}${probe.checked ? '' : '?write_probe=false'}`;
    });
  }
})();
