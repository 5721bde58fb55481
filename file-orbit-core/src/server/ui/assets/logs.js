// The logs page's script: "Follow live" asks the API every 2 s for lines newer than the
// newest shown (with the page's filters) and puts them on top, as text.
'use strict';

(() => {
  const follow = document.getElementById('follow');
  const table = document.getElementById('log-lines');
  if (!follow || !table) return;
  const body = table.tBodies[0];
  const form = document.getElementById('logs-filter');
  let timer = null;

  function newest() {
    const row = body.querySelector('tr[data-time]:not([data-time=""])');
    return row ? row.dataset.time : null;
  }

  function row(line) {
    const tr = FO.el('tr', null, { 'data-time': line.time || '' });
    const cell = (label, text, cls) => {
      const td = FO.el('td', text, { 'data-label': label });
      if (cls) td.className = cls;
      tr.append(td);
      return td;
    };
    cell('Time', line.time || '', 'mono');
    cell('Service', line.service);
    cell('Level', line.level || '', `level-${line.level || 'none'}`);
    const job = cell('Job', '');
    if (line.job) job.append(FO.el('a', line.job, { href: `/ui/jobs/${line.job}` }));
    cell('Line', line.line, 'mono');
    return tr;
  }

  async function poll() {
    const params = new URLSearchParams();
    ['service', 'level', 'job'].forEach((name) => {
      const value = form.elements.namedItem(name).value.trim();
      if (value) params.set(name, value);
    });
    const since = newest();
    if (since) params.set('since', since);
    params.set('limit', '500');
    try {
      const lines = await FO.api('GET', `/api/v1/logs?${params}`);
      const seen = new Set(Array.from(body.rows).map((tr) => tr.dataset.time + tr.lastElementChild.textContent));
      const fresh = lines.filter((line) => !seen.has((line.time || '') + line.line));
      if (fresh.length) {
        const empty = body.querySelector('tr.empty');
        if (empty) empty.remove();
        fresh.reverse().forEach((line) => body.prepend(row(line)));
      }
      FO.show(document.querySelector('[data-result]'), `Following: ${fresh.length} new line(s) at ${new Date().toLocaleTimeString()}`, false);
    } catch (error) {
      FO.show(document.querySelector('[data-result]'), error.message, true);
    }
  }

  follow.addEventListener('change', () => {
    if (timer) { clearInterval(timer); timer = null; }
    if (follow.checked) { poll(); timer = setInterval(poll, 2000); }
  });
})();
