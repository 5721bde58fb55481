// The endpoints pages' script (loaded after app.js): registers its handlers on window.FO.
'use strict';
