// The dashboard's script (loaded after app.js): the running transfers' bars are live
// (app.js follows them); when one ends, the page is read again so the counts, the chart
// and the lists include it.
'use strict';

document.addEventListener('fo:job-end', () => {
  window.location.reload();
});
