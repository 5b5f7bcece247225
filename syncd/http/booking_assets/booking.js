// The booking page works without this file. It only saves a visitor whose URL names no
// time zone a step: it asks the browser for its zone and shows the times in it.
(function () {
  "use strict";
  var select = document.getElementById("tz");
  if (!select || new URLSearchParams(location.search).has("tz")) { return; }
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone || zone === select.value) { return; }
  for (var i = 0; i < select.options.length; i++) {
    if (select.options[i].value === zone) {
      var params = new URLSearchParams(location.search);
      params.set("tz", zone);
      location.replace(location.pathname + "?" + params.toString());
      return;
    }
  }
}());
