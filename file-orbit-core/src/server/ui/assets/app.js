// File Orbit's console script: calls the API with the session's CSRF token, turns forms
// and buttons marked data-api into API calls, follows running jobs' progress, and gives
// page scripts a small toolkit (window.FO). Values are put into the page with textContent
// only, never as HTML.
'use strict';

(() => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : '';

  class ApiError extends Error {
    constructor(message, status, field) {
      super(message);
      this.status = status;
      this.field = field;
    }
  }

  // Calls the API; resolves to the answer's JSON (or text), rejects with an ApiError
  // carrying the server's message and the field it names.
  async function api(method, path, body) {
    const headers = { Accept: 'application/json', 'X-CSRF-Token': csrf };
    const init = { method, headers, credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = text;
    try { data = text ? JSON.parse(text) : null; } catch (_) { /* not JSON: keep the text */ }
    if (!response.ok) {
      const error = data && data.error ? data.error : { message: String(text || response.statusText) };
      throw new ApiError(error.message, response.status, error.field);
    }
    return data;
  }

  // Sets a value at a dotted path ("auth.password") in an object.
  function setPath(target, path, value) {
    const keys = path.split('.');
    let here = target;
    keys.slice(0, -1).forEach((key) => {
      if (typeof here[key] !== 'object' || here[key] === null) here[key] = {};
      here = here[key];
    });
    here[keys[keys.length - 1]] = value;
  }

  // A form's fields as the API's JSON body. Per field, data-kind says how to read it:
  // number, bool (a checkbox), json, list (one item per line or comma); text otherwise.
  // Empty fields are left out; fields marked data-skip, disabled or without a name too.
  function formBody(form) {
    const body = {};
    for (const field of form.elements) {
      if (!field.name || field.disabled || field.dataset.skip !== undefined) continue;
      if (field.type === 'submit' || field.type === 'button') continue;
      const kind = field.dataset.kind || 'text';
      if (field.type === 'radio' && !field.checked) continue;
      if (kind === 'bool') { setPath(body, field.name, field.checked); continue; }
      const raw = field.value.trim();
      if (raw === '') continue;
      let value = raw;
      if (kind === 'number') {
        value = Number(raw);
        if (!Number.isFinite(value)) throw new ApiError('must be a number', 400, field.name);
      } else if (kind === 'json') {
        try { value = JSON.parse(raw); } catch (_) { throw new ApiError('is not valid JSON', 400, field.name); }
      } else if (kind === 'list') {
        value = raw.split(/[\n,]/).map((item) => item.trim()).filter(Boolean);
      }
      setPath(body, field.name, value);
    }
    return body;
  }

  // "PUT /api/v1/endpoints/{name}" with {name} taken from the form's field of that name.
  function target(spec, form) {
    const space = spec.indexOf(' ');
    const method = spec.slice(0, space);
    const path = spec.slice(space + 1).replace(/\{([a-z_]+)\}/g, (_, name) => {
      const field = form && form.elements.namedItem(name);
      return encodeURIComponent(field ? field.value.trim() : '');
    });
    return { method, path };
  }

  function resultOf(element) {
    const scope = element.closest('form, [data-actions]') || document;
    return scope.querySelector('[data-result]');
  }

  function show(output, text, isError) {
    if (!output) { if (isError) window.alert(text); return; }
    output.textContent = text;
    output.classList.toggle('error', Boolean(isError));
    output.classList.toggle('ok', !isError);
  }

  function markField(form, error) {
    if (!form) return;
    form.querySelectorAll('[aria-invalid]').forEach((f) => f.removeAttribute('aria-invalid'));
    if (!error.field) return;
    const field = form.elements.namedItem(error.field);
    if (field && field.setAttribute) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  }

  // After a call succeeded: reload, go to a page ("/ui/jobs/{id}" from the answer), or
  // hand the answer to a page's handler (data-then="handler:name").
  function then(element, data) {
    const next = element.dataset.then || 'reload';
    if (next === 'reload') { window.location.reload(); return; }
    if (next.startsWith('handler:')) {
      const handler = FO.handlers[next.slice(8)];
      if (handler) handler(data, element);
      return;
    }
    if (next === 'stay') { show(resultOf(element), 'Done.', false); return; }
    window.location.assign(next.replace(/\{([a-z_]+)\}/g, (_, key) => encodeURIComponent(data && data[key] !== undefined ? data[key] : '')));
  }

  function errorText(error) {
    return error.field ? `${error.field}: ${error.message}` : error.message;
  }

  async function run(element, spec, form, body) {
    if (element.dataset.confirm && !window.confirm(element.dataset.confirm)) return;
    const output = resultOf(element);
    const { method, path } = target(spec, form);
    element.setAttribute('aria-busy', 'true');
    show(output, 'Working…', false);
    try {
      const data = await api(method, path, body);
      markField(form, {});
      then(element, data);
    } catch (error) {
      show(output, errorText(error), true);
      markField(form, error);
    } finally {
      element.removeAttribute('aria-busy');
    }
  }

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.api) return;
    event.preventDefault();
    let body;
    try { body = formBody(form); } catch (error) {
      show(resultOf(form), errorText(error), true);
      markField(form, error);
      return;
    }
    const prepare = form.dataset.prepare && FO.prepare[form.dataset.prepare];
    if (prepare) body = prepare(body, form);
    run(form, form.dataset.api, form, body);
  });

  document.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-api]');
    if (!button || button.form) return;
    event.preventDefault();
    run(button, button.dataset.api, null, button.dataset.body ? JSON.parse(button.dataset.body) : undefined);
  });

  const TERMINAL = new Set(['succeeded', 'dead', 'cancelled']);

  // Shows a job's state and progress in its bar, its text, the page's [data-job-state]
  // badges and [data-job-error] for that job.
  function showJob(element, job) {
    const id = element.dataset.jobProgress;
    const bar = element.querySelector('progress');
    const text = element.querySelector('[data-progress-text]');
    const p = job.progress;
    let percent = 0;
    if (job.state === 'succeeded') percent = 100;
    else if (p && p.total_bytes > 0) percent = Math.min(100, Math.floor((100 * p.bytes) / p.total_bytes));
    bar.value = percent;
    bar.textContent = `${percent}%`;
    const speed = p && p.speed > 0 ? ` · ${FO.bytes(p.speed)}/s` : '';
    text.textContent = `${percent}% · ${job.state}${speed}`;
    element.dataset.state = job.state;
    document.querySelectorAll(`[data-job-state="${CSS.escape(id)}"]`).forEach((state) => {
      state.textContent = job.state;
      state.className = `badge state-${job.state}`;
    });
    if (job.last_error) {
      const error = document.querySelector(`[data-job-error="${CSS.escape(id)}"]`);
      if (error) error.textContent = job.last_error;
    }
  }

  function ended(element, state) {
    element.dataset.state = state;
    element.dispatchEvent(new CustomEvent('fo:job-end', { bubbles: true, detail: { id: element.dataset.jobProgress, state } }));
  }

  // A job's own page ([data-stream]): its event stream, until it ends.
  function streamJob(element) {
    const id = element.dataset.jobProgress;
    const source = new EventSource(`/api/v1/jobs/${encodeURIComponent(id)}/events`);
    source.addEventListener('update', (event) => showJob(element, JSON.parse(event.data)));
    source.addEventListener('end', (event) => {
      source.close();
      ended(element, JSON.parse(event.data).state);
    });
    source.addEventListener('error', () => { if (source.readyState === EventSource.CLOSED) element.dataset.stream = 'closed'; });
  }

  // The jobs of a list or the dashboard: a browser keeps only a few connections open to
  // one server, so rather than a stream each, one request every 2 s reads every running
  // job; a job no longer running is read once more, for its final state.
  function pollJobs(elements) {
    const live = new Map(elements.map((element) => [element.dataset.jobProgress, element]));
    const tick = async () => {
      try {
        const running = await api('GET', '/api/v1/jobs?state=leased&limit=1000');
        const seen = new Set();
        running.forEach((job) => {
          const element = live.get(String(job.id));
          if (element) { showJob(element, job); seen.add(String(job.id)); }
        });
        for (const [id, element] of live) {
          if (seen.has(id)) continue;
          const job = await api('GET', `/api/v1/jobs/${encodeURIComponent(id)}`);
          showJob(element, job);
          if (TERMINAL.has(job.state)) { live.delete(id); ended(element, job.state); }
        }
      } catch (_) { /* the next tick tries again */ }
      if (live.size) window.setTimeout(tick, 2000);
    };
    window.setTimeout(tick, 1000);
  }

  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = Number(n) || 0;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
  }

  // Creates an element with text (never HTML) and attributes.
  function el(tag, text, attributes) {
    const element = document.createElement(tag);
    if (text !== undefined && text !== null) element.textContent = String(text);
    Object.entries(attributes || {}).forEach(([name, value]) => element.setAttribute(name, value));
    return element;
  }

  const FO = { api, ApiError, formBody, setPath, bytes, el, show, handlers: {}, prepare: {}, ready: [] };
  window.FO = FO;

  document.addEventListener('DOMContentLoaded', () => {
    const bars = Array.from(document.querySelectorAll('[data-job-progress]:not([data-static])'));
    bars.filter((bar) => bar.dataset.stream !== undefined).forEach(streamJob);
    const listed = bars.filter((bar) => bar.dataset.stream === undefined);
    if (listed.length) pollJobs(listed);
    FO.ready.forEach((init) => init());
  });
})();
