// Lockdown page guard (isolated world): stops links to schemes the exam does not allow
// (javascript:, data:, file:, blob: unless a rule allows them) before the browser engine
// runs them, and reports each one to the exam browser, which journals it.
(function () {
  "use strict";
  const config = __LOCKDOWN_CONFIG__;
  const blocked = new Set(config.blocked);
  function schemeOf(href) {
    const match = /^\s*([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(href || "");
    return match ? match[1].toLowerCase() : "";
  }
  function check(event) {
    const path = event.composedPath ? event.composedPath() : [event.target];
    for (const node of path) {
      if (node && node.tagName && (node.tagName === "A" || node.tagName === "AREA")) {
        const href = node.getAttribute("href") || "";
        if (blocked.has(schemeOf(href))) {
          event.preventDefault();
          event.stopImmediatePropagation();
          console.log(config.prefix + "blocked-link " + href);
        }
        return;
      }
    }
  }
  window.addEventListener("click", check, true);
  window.addEventListener("auxclick", check, true);
})();
