// Lockdown in-page clipboard (guards.clipboard = "isolated").
// Copy, cut and paste keep working inside the exam through a clipboard that lives in
// the page (shared by same-origin frames): nothing copied here reaches the system
// clipboard, and nothing from the system clipboard reaches the page. Injected into the
// main world at document creation, before any page script, by
// lockdown.guards.clipboard.install_clipboard_isolation.
(() => {
  "use strict";
  const STORE_KEY = Symbol.for("lockdown.clipboard.store");
  if (window[STORE_KEY]) {
    return;
  }

  function sharedStore() {
    try {
      if (window.top !== window && window.top[STORE_KEY]) {
        return window.top[STORE_KEY];
      }
    } catch (_) {
      // cross-origin parent: this frame keeps its own clipboard
    }
    return { text: "" };
  }
  const store = sharedStore();
  Object.defineProperty(window, STORE_KEY, { value: store, enumerable: false });

  const TEXT_INPUTS = /^(text|search|url|tel|password|email|number)$/i;

  function editableField(el) {
    return (
      el &&
      (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && TEXT_INPUTS.test(el.type)))
    );
  }

  function selectedText() {
    const el = document.activeElement;
    if (editableField(el)) {
      try {
        return el.value.substring(el.selectionStart, el.selectionEnd);
      } catch (_) {
        return "";
      }
    }
    const selection = window.getSelection();
    return selection ? String(selection) : "";
  }

  function stop(event) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }

  window.addEventListener(
    "copy",
    (event) => {
      store.text = selectedText();
      stop(event);
    },
    true,
  );

  window.addEventListener(
    "cut",
    (event) => {
      store.text = selectedText();
      stop(event);
      if (store.text) {
        document.execCommand("delete");
      }
    },
    true,
  );

  window.addEventListener(
    "paste",
    (event) => {
      stop(event);
      if (store.text) {
        document.execCommand("insertText", false, store.text);
      }
    },
    true,
  );

  // Middle-click paste (X11 PRIMARY) never reaches the page.
  for (const type of ["mousedown", "mouseup", "auxclick"]) {
    window.addEventListener(
      type,
      (event) => {
        if (event.button === 1) {
          stop(event);
        }
      },
      true,
    );
  }

  // The async Clipboard API talks to the in-page clipboard too.
  if (window.Clipboard && Clipboard.prototype) {
    const define = (name, fn) =>
      Object.defineProperty(Clipboard.prototype, name, {
        value: fn,
        writable: false,
        configurable: false,
      });
    define("writeText", async function writeText(text) {
      store.text = String(text);
    });
    define("readText", async function readText() {
      return store.text;
    });
    define("write", async function write(items) {
      for (const item of items || []) {
        if (item.types && item.types.includes("text/plain")) {
          const blob = await item.getType("text/plain");
          store.text = await blob.text();
          return;
        }
      }
      store.text = "";
    });
    define("read", async function read() {
      const blob = new Blob([store.text], { type: "text/plain" });
      return [new ClipboardItem({ "text/plain": blob })];
    });
  }
})();
