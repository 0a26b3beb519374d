// symbackprop serve: progressive enhancement only; every form also works without this file.
// - forms with data-live="TARGET" update TARGET as you type (debounced), from the server-rendered fragment
//   (?fragment=1), and keep the address bar on the shareable GET URL of what is shown;
// - copy buttons; a "Larger text" toggle for projectors (remembered for the session).
"use strict";
(function () {
  function params(form) {
    var p = new URLSearchParams();
    new FormData(form).forEach(function (v, k) {
      if (typeof v === "string" && v !== "") { p.append(k, v); }
    });
    return p;
  }
  function live(form) {
    var target = document.getElementById(form.dataset.live);
    var status = document.getElementById(form.dataset.live + "-status");
    var delay = parseInt(form.dataset.delay || "450", 10);
    var timer = null, controller = null, last = params(form).toString();
    function update() {
      var p = params(form), query = p.toString();
      if (query === last) { return; }
      last = query;
      if (controller) { controller.abort(); }
      controller = new AbortController();
      target.classList.add("updating");
      if (status) { status.textContent = "updating…"; }
      var long = query.length > 4000;                   // long formulas go in a POST body, not the URL
      fetch(form.dataset.page + (long ? "?fragment=1" : "?" + query + "&fragment=1"),
            long ? {method: "POST", body: p, signal: controller.signal, credentials: "same-origin"}
                 : {signal: controller.signal, credentials: "same-origin"})
        .then(function (r) { return r.text().then(function (t) { return [r, t]; }); })
        .then(function (rt) {
          target.innerHTML = rt[1];                       // server-rendered, escaped HTML (CSP: no inline script)
          target.classList.remove("updating");
          if (status) { status.textContent = rt[0].ok ? "" : "(" + rt[0].status + ")"; }
          if (!long) { history.replaceState(null, "", form.dataset.page + "?" + query); }
          wire(target);
        })
        .catch(function (e) {
          if (e.name === "AbortError") { return; }
          target.classList.remove("updating");
          if (status) { status.textContent = "could not reach the server"; }
        });
    }
    function schedule() { clearTimeout(timer); timer = setTimeout(update, delay); }
    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); last = null; clearTimeout(timer); update(); });
  }
  function wire(root) {
    root.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
      b.hidden = false;
      b.addEventListener("click", function () {
        var text = document.getElementById(b.dataset.copy).textContent;
        var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = "Copy"; }, 1500); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { select(b.dataset.copy); });
        } else { select(b.dataset.copy); }
      });
    });
  }
  function select(id) {
    var range = document.createRange();
    range.selectNodeContents(document.getElementById(id));
    var s = window.getSelection(); s.removeAllRanges(); s.addRange(range);
  }
  function sizeToggle() {
    var b = document.getElementById("size-toggle");
    if (!b) { return; }
    var big = sessionStorage.getItem("big") === "1" || new URLSearchParams(location.search).has("big");
    function apply() { document.documentElement.classList.toggle("big", big); b.textContent = big ? "Normal text" : "Larger text"; }
    b.hidden = false; apply();
    b.addEventListener("click", function () { big = !big; sessionStorage.setItem("big", big ? "1" : "0"); apply(); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-live]").forEach(live);
    wire(document);
    sizeToggle();
  });
})();
