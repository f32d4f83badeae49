// Demo exam: a count-down timer and answers kept while the page is open.
(function () {
  "use strict";
  const end = Date.now() + 30 * 60 * 1000;
  const label = document.getElementById("timer");
  function tick() {
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    const m = String(Math.floor(left / 60)).padStart(2, "0");
    const s = String(left % 60).padStart(2, "0");
    label.textContent = m + ":" + s;
  }
  tick();
  setInterval(tick, 1000);
})();
