// Safe Exam Browser JavaScript API (main world): window.SafeExamBrowser with the
// per-URL Config Key hash and Browser Exam Key hash of this page, as Safe Exam Browser
// exposes them. updateKeys(callback) asks the exam browser for the hashes of the
// current URL (after a same-document navigation) and then calls callback.
(function () {
  "use strict";
  const initial = __LOCKDOWN_SEB__;
  const prefix = initial.prefix;
  const security = {};
  let configKey = initial.configKey;
  let browserExamKey = initial.browserExamKey;
  const waiting = [];
  Object.defineProperty(security, "configKey", { get: () => configKey, enumerable: true });
  Object.defineProperty(security, "browserExamKey", {
    get: () => browserExamKey,
    enumerable: true,
  });
  Object.defineProperty(security, "updateKeys", {
    value: function (callback) {
      if (typeof callback === "function") waiting.push(callback);
      console.log(prefix + "seb-update " + location.href);
    },
    enumerable: true,
  });
  Object.defineProperty(window, "__lockdownSebUpdate", {
    value: function (values) {
      configKey = values.configKey;
      browserExamKey = values.browserExamKey;
      const callbacks = waiting.splice(0, waiting.length);
      for (const cb of callbacks) {
        try { cb(); } catch (e) { console.error(e); }
      }
    },
  });
  Object.defineProperty(window, "SafeExamBrowser", {
    value: Object.freeze({ version: initial.version, security: Object.freeze(security) }),
    enumerable: true,
  });
})();
