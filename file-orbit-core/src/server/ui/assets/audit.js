// The audit page's script: "Verify chain" asks the API to check the log's hash chain and
// says the answer in words.
'use strict';

(() => {
  const button = document.getElementById('verify-chain');
  const output = document.getElementById('verify-result');
  if (!button || !output) return;
  button.addEventListener('click', async () => {
    button.setAttribute('aria-busy', 'true');
    FO.show(output, 'Checking every record’s hash…', false);
    try {
      const check = await FO.api('GET', '/api/v1/audit/verify');
      if (check.intact) {
        FO.show(output, 'The chain is intact: no record was changed or removed.', false);
      } else {
        FO.show(output, `The chain is broken at record ${check.first_bad_id}: it or one before it was changed or removed.`, true);
      }
      output.dataset.outcome = check.intact ? 'intact' : 'broken';
    } catch (error) {
      FO.show(output, error.message, true);
    } finally {
      button.removeAttribute('aria-busy');
    }
  });
})();
