// The jobs pages' script (loaded after app.js): a job's page reloads when its live
// progress ends (to show the final state, attempts and log), and shows the jobs a
// replayed event made as links (built with FO.el: text only).
'use strict';

(() => {
  const page = document.querySelector('[data-job-page]');
  if (page) {
    page.addEventListener('fo:job-end', () => window.location.reload());
  }

  FO.handlers.replayed = (answer, element) => {
    const scope = element.closest('[data-actions]') || document;
    const output = scope.querySelector('[data-result]');
    if (!output) return;
    const ids = (answer && answer.job_ids) || [];
    output.classList.remove('error');
    output.classList.add('ok');
    if (!ids.length) { output.textContent = 'Replayed: no template matched, so no job was made.'; return; }
    output.replaceChildren(FO.el('span', `Replayed event ${answer.id}: `));
    ids.forEach((id, index) => {
      if (index) output.append(', ');
      output.append(FO.el('a', `job #${id}`, { href: `/ui/jobs/${encodeURIComponent(id)}` }));
    });
  };
})();
