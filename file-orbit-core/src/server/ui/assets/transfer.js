// The new-transfer form's script (loaded after app.js): the folder browser of each side
// (GET /api/v1/endpoints/{name}/files), the live preview of the destination template
// (POST /api/v1/paths/preview) and the body's last touches before POST /api/v1/jobs.
// Names and messages go into the page with textContent only (FO.el), never as HTML.
'use strict';

(() => {
  const form = document.getElementById('transfer-form');
  if (!form) return;
  const field = (name) => form.elements.namedItem(name);
  const pathField = (side) => field(side === 'source' ? 'spec.source_path' : 'spec.destination_path');

  // Globs one per line (a glob may hold a comma: *.{jpg,png}).
  FO.prepare.transfer = (body) => {
    form.querySelectorAll('textarea[data-lines]').forEach((area) => {
      const globs = area.value.split('\n').map((line) => line.trim()).filter(Boolean);
      if (!globs.length) return;
      body.spec = body.spec || {};
      body.spec.filters = body.spec.filters || {};
      body.spec.filters[area.name.split('.').pop()] = globs;
    });
    return body;
  };

  // ---- Folder browser ----
  const parentOf = (path) => {
    const parts = path.split('/').filter(Boolean);
    parts.pop();
    return parts.join('/');
  };

  function browserOf(side) {
    return form.querySelector(`[data-browser="${side}"]`);
  }

  function pick(side, path, isDir) {
    const input = pathField(side);
    if (side === 'destination') {
      input.value = isDir ? (path ? `${path}/{filename}` : '{filename}') : path;
    } else {
      input.value = path;
      field('spec.scope').value = isDir ? 'tree' : 'file';
    }
    input.dispatchEvent(new Event('input', { bubbles: true }));
    close(side);
    input.focus();
  }

  function close(side) {
    const browser = browserOf(side);
    browser.hidden = true;
    form.querySelector(`[data-browse="${side}"]`).setAttribute('aria-expanded', 'false');
  }

  async function list(side, dir) {
    const browser = browserOf(side);
    const endpoint = field(`spec.${side}`).value;
    const note = browser.querySelector('[data-browser-note]');
    const entries = browser.querySelector('[data-browser-list]');
    browser.hidden = false;
    form.querySelector(`[data-browse="${side}"]`).setAttribute('aria-expanded', 'true');
    entries.replaceChildren();
    if (!endpoint) {
      note.textContent = `Pick the ${side} endpoint first.`;
      note.classList.add('error');
      return;
    }
    note.classList.remove('error');
    note.textContent = 'Listing…';
    browser.dataset.path = dir;
    browser.querySelector('[data-browser-path]').textContent = `${endpoint}:${dir || '/'}`;
    let answer;
    try {
      answer = await FO.api('GET', `/api/v1/endpoints/${encodeURIComponent(endpoint)}/files?path=${encodeURIComponent(dir)}&limit=1000`);
    } catch (error) {
      note.textContent = error.field ? `${error.field}: ${error.message}` : error.message;
      note.classList.add('error');
      return;
    }
    const here = answer.path !== undefined ? answer.path : dir;
    browser.dataset.path = here;
    browser.querySelector('[data-browser-path]').textContent = `${endpoint}:${here || '/'}`;
    const item = (text, title, onClick, kind) => {
      const button = FO.el('button', text, { type: 'button', class: `link browser-${kind}`, title });
      button.addEventListener('click', onClick);
      const li = FO.el('li');
      li.append(button);
      return li;
    };
    if (here) entries.append(item('..', 'Up one folder', () => list(side, parentOf(here)), 'up'));
    (answer.entries || []).forEach((entry) => {
      if (entry.is_dir) {
        entries.append(item(`${entry.name}/`, `Open ${entry.name}`, () => list(side, entry.path), 'dir'));
      } else {
        const li = item(entry.name, `Use ${entry.name}`, () => pick(side, entry.path, false), 'file');
        li.append(FO.el('span', ` ${FO.bytes(entry.size)}`, { class: 'hint' }));
        entries.append(li);
      }
    });
    const count = (answer.entries || []).length;
    const noun = count === 1 ? 'entry' : 'entries';
    note.textContent = count ? (answer.truncated ? `The first ${count} ${noun}.` : `${count} ${noun}.`) : 'This folder is empty.';
  }

  form.querySelectorAll('[data-browse]').forEach((button) => {
    const side = button.dataset.browse;
    const browser = browserOf(side);
    button.addEventListener('click', () => {
      if (!browser.hidden) { close(side); return; }
      const current = pathField(side).value.trim();
      // Start where the path points: its folder (a file's or a template's parent).
      const start = side === 'source' && field('spec.scope').value === 'tree' ? current : parentOf(current);
      list(side, start.includes('{') ? '' : start);
    });
    browser.querySelector('[data-browser-use]').addEventListener('click', () => pick(side, browser.dataset.path || '', true));
    browser.querySelector('[data-browser-close]').addEventListener('click', () => { close(side); button.focus(); });
    field(`spec.${side}`).addEventListener('change', () => close(side));
  });

  // ---- Destination preview ----
  const preview = document.getElementById('path-preview');
  let timer = null;
  let asked = 0;

  async function renderPreview() {
    const template = field('spec.destination_path').value.trim();
    const file = field('spec.source_path').value.trim();
    const ask = ++asked;
    preview.classList.remove('error');
    if (!template) { preview.textContent = ''; return; }
    if (!file) { preview.textContent = 'Pick a source path to see where it lands.'; return; }
    try {
      const answer = await FO.api('POST', '/api/v1/paths/preview', { template, file });
      if (ask !== asked) return;
      preview.textContent = answer.path;
    } catch (error) {
      if (ask !== asked) return;
      preview.textContent = error.message;
      preview.classList.add('error');
    }
  }

  ['spec.destination_path', 'spec.source_path'].forEach((name) => {
    field(name).addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(renderPreview, 300);
    });
  });
  renderPreview();
})();
