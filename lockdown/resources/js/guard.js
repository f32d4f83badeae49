// Lockdown page guard (isolated world, every frame, before the page's own scripts): stops
// links, form submissions and frames whose URL has a scheme the exam does not allow
// (javascript:, data:, file:, blob: unless a rule allows them) before the browser engine
// runs them, and reports each one to the exam browser, which journals it.
//
// The scheme is read by the engine's own URL parser (new URL), never by a string prefix:
// "java<TAB>script:", " javascript:" or "JAVASCRIPT:" are the same URL to the engine.
(function () {
  "use strict";
  const config = __LOCKDOWN_CONFIG__;
  const blocked = new Set(config.blocked);
  const SVG = "http://www.w3.org/2000/svg";
  const XLINK = "http://www.w3.org/1999/xlink";

  // The URL as the engine resolves it when its scheme is refused, else "".
  function refused(raw) {
    if (raw === null || raw === undefined) {
      return "";
    }
    let url;
    try {
      url = new URL(String(raw), document.baseURI);
    } catch (error) {
      return "";
    }
    return blocked.has(url.protocol.slice(0, -1).toLowerCase()) ? url.href : "";
  }

  function report(kind, url) {
    console.log(config.prefix + kind + " " + url);
  }

  // The href of an HTML or SVG link (<a>, <area>), null for any other node.
  function linkHref(node) {
    const name = node && node.localName;
    if (name !== "a" && name !== "area") {
      return null;
    }
    if (node.namespaceURI === SVG) {
      return node.getAttribute("href") ?? node.getAttributeNS(XLINK, "href") ?? "";
    }
    return node.getAttribute("href") ?? "";
  }

  // A script's own click event may be made uncancellable (preventDefault then does
  // nothing): the link loses its href until this event is over, so it follows nothing.
  function disarm(node) {
    const saved = [];
    for (const [space, name] of [[null, "href"], [XLINK, "href"]]) {
      const value = node.getAttributeNS(space, name);
      if (value !== null) {
        saved.push([space, name, value]);
        node.removeAttributeNS(space, name);
      }
    }
    setTimeout(() => {
      for (const [space, name, value] of saved) {
        node.setAttributeNS(space, name, value);
      }
    }, 0);
  }

  function checkLink(event) {
    const path = event.composedPath ? event.composedPath() : [event.target];
    for (const node of path) {
      const href = linkHref(node);
      if (href === null) {
        continue;
      }
      const url = refused(href);
      if (url) {
        event.preventDefault();
        event.stopImmediatePropagation();
        disarm(node);
        if (event.type !== "DOMActivate") {
          report("blocked-link", url);
        }
      }
      return;
    }
  }

  function checkSubmit(event) {
    const form = event.target;
    if (!form || form.localName !== "form") {
      return;
    }
    const submitter = event.submitter;
    const raw =
      (submitter && submitter.getAttribute("formaction")) ?? form.getAttribute("action");
    const url = refused(raw);
    if (url) {
      event.preventDefault();
      event.stopImmediatePropagation();
      report("blocked-form", url);
    }
  }

  // A frame whose src is refused is taken out before its URL runs (a static
  // <iframe src="javascript:…"> is inserted by the parser before any page script).
  function checkFrame(node) {
    const name = node && node.localName;
    if (name !== "iframe" && name !== "frame") {
      return;
    }
    const url = refused(node.getAttribute("src"));
    if (url) {
      node.removeAttribute("src");
      node.remove();
      report("blocked-frame", url);
    }
  }

  function checkTree(node) {
    checkFrame(node);
    if (node.querySelectorAll) {
      for (const frame of node.querySelectorAll("iframe[src], frame[src]")) {
        checkFrame(frame);
      }
    }
  }

  if (blocked.size > 0) {
    window.addEventListener("click", checkLink, true);
    window.addEventListener("auxclick", checkLink, true);
    // SVG links follow on DOMActivate, which a synthetic click dispatches on its own.
    window.addEventListener("DOMActivate", checkLink, true);
    window.addEventListener("submit", checkSubmit, true);
    new MutationObserver((records) => {
      for (const record of records) {
        if (record.type === "attributes") {
          checkFrame(record.target);
        }
        for (const node of record.addedNodes) {
          checkTree(node);
        }
      }
    }).observe(document, {
      childList: true,
      subtree: true,
      attributes: true,
      attributeFilter: ["src"],
    });
  }
})();
