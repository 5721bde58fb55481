// The agents page's script (loaded after app.js, for admins): a new agent's one-time
// enrolment token shown once, with its expiry and the agent's ready [agent] configuration
// (this server's address as the control plane). The token is put in the page only, never
// in its address or storage.
'use strict';

(() => {
  const FO = window.FO;

  // A TOML basic string: quotes and backslashes escaped.
  const toml = (text) => `"${String(text).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

  // Milliseconds since the epoch as the pages write times: 2026-12-07 21:15:07 UTC.
  const utc = (ms) => `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;

  // POST /api/v1/agents: {name, labels, enrolment_token, expires_at}.
  FO.handlers.agentEnrolled = (answer, form) => {
    const box = document.getElementById('enrolment');
    if (!box) return;
    box.querySelector('[data-enrolment-name]').textContent = answer.name;
    box.querySelector('[data-enrolment-expires]').textContent = utc(answer.expires_at);
    const token = box.querySelector('#enrolment-token');
    token.value = answer.enrolment_token;
    box.querySelector('#enrolment-config').value = [
      '[agent]',
      `control_plane = [${toml(window.location.origin)}]`,
      'credential_file = "/var/lib/file-orbit/agent.credential"',
      `enrolment_token = ${toml(answer.enrolment_token)}`,
      '',
    ].join('\n');
    box.hidden = false;
    form.reset();
    const labels = answer.labels.length ? ` with labels ${answer.labels.join(', ')}` : '';
    FO.show(form.querySelector('[data-result]'), `Agent ${answer.name} created${labels}: pending until it enrols.`, false);
    box.focus();
    token.select();
  };
})();
