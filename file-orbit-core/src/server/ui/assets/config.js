// The configuration pages' script (loaded after app.js): the JSON editors' body, the
// answer of a notification's test in words, and a new API key shown once.
'use strict';

(() => {
  const FO = window.FO;

  // An editor's body is its JSON definition, named by the form's name field.
  FO.prepare.definition = (body) => {
    const definition = body.definition;
    if (definition && typeof definition === 'object' && !Array.isArray(definition)) {
      if (definition.name === undefined && body.name !== undefined) definition.name = body.name;
      return definition;
    }
    return definition === undefined ? {} : definition;
  };

  // POST /api/v1/notifications/{name}/test: {ok, answer, error, error_kind}.
  FO.handlers.notificationTested = (answer, button) => {
    const scope = button.closest('[data-actions]');
    const output = scope && scope.querySelector('[data-result]');
    if (answer && answer.ok) {
      FO.show(output, `Test sent: the channel answered ${answer.answer || 'OK'}.`, false);
    } else {
      const kind = answer && answer.error_kind ? ` (${answer.error_kind})` : '';
      FO.show(output, `Test failed${kind}: ${answer && answer.error ? answer.error : 'no answer'}`, true);
    }
  };

  // POST /api/v1/keys: the key is in this answer only; it is shown once, never stored
  // in the page's address or storage.
  FO.handlers.keyCreated = (answer, form) => {
    const box = document.getElementById('new-key');
    if (!box) return;
    box.querySelector('[data-new-key-name]').textContent = answer.name;
    const value = box.querySelector('#new-key-value');
    value.value = answer.key;
    box.hidden = false;
    form.reset();
    FO.show(form.querySelector('[data-result]'), `Key ${answer.name} created (${answer.role}).`, false);
    box.focus();
    value.select();
  };
})();
