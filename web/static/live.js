// condaops status site: optional enhancements. Every page works without this file.
// - copy buttons next to commands;
// - times as "3 min ago" (the exact UTC time stays on hover), running builds' elapsed time;
// - live pages: <main data-live="URL"> follows server-sent events from URL and, on
//   "changed", fetches the page again and swaps its <main> in (not while a form in it
//   has the focus); "step" names the step a running build is in;
// - the live build log: appends what the server streams as text.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function bindCopy(root) {
    root.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var done = function () {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = "Copy"; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(button.dataset.copy).then(done);
        } else {
          var area = document.createElement("textarea");
          area.value = button.dataset.copy;
          document.body.appendChild(area);
          area.select();
          document.execCommand("copy");
          area.remove();
          done();
        }
      });
    });
  }

  function relative(seconds) {
    var future = seconds < 0;
    var s = Math.abs(seconds);
    var text;
    if (s < 45) { text = "just now"; return text; }
    if (s < 90 * 60) { text = Math.round(s / 60) + " min"; }
    else if (s < 36 * 3600) { text = Math.round(s / 3600) + " h"; }
    else { text = Math.round(s / 86400) + " days"; }
    return future ? "in " + text : text + " ago";
  }

  function elapsed(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + r + " s";
  }

  function tick(root) {
    var now = Date.now();
    root.querySelectorAll("time[data-ago]").forEach(function (t) {
      var at = Date.parse(t.getAttribute("datetime"));
      if (!isNaN(at)) { t.textContent = relative((now - at) / 1000); }
    });
    root.querySelectorAll("[data-elapsed]").forEach(function (e) {
      var at = Date.parse(e.dataset.elapsed);
      if (!isNaN(at)) { e.textContent = elapsed((now - at) / 1000); }
    });
  }

  function setStep(name) {
    document.querySelectorAll(".step").forEach(function (s) { s.textContent = name; });
  }

  bindCopy(document);
  tick(document);
  setInterval(function () { tick(document); }, 1000);

  var main = document.querySelector("main[data-live]");
  if (main && window.EventSource && window.fetch && window.DOMParser) {
    var busy = false, again = false;
    var refresh = function () {
      if (busy) { again = true; return; }
      busy = true;
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          var focus = document.activeElement;
          if (focus && main.contains(focus) && focus.closest("form")) {
            again = true;  // do not pull a form from under the reader's hands
            return;
          }
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.querySelector("main");
          if (!fresh) { return; }
          main.innerHTML = fresh.innerHTML;
          document.title = doc.title;
          main.dataset.updated = String(Date.now());
          bindCopy(main);
          tick(main);
        })
        .catch(function () { again = true; })
        .then(function () {
          busy = false;
          if (again) { again = false; setTimeout(refresh, 1000); }
        });
    };
    var events = new EventSource(main.dataset.live);
    events.addEventListener("ready", function () { main.dataset.liveReady = "1"; });
    events.addEventListener("changed", refresh);
    events.addEventListener("step", function (event) { setStep(event.data); });
  }

  var log = document.getElementById("log");
  var status = document.getElementById("live-status");
  if (!log || !log.dataset.stream || !window.EventSource) {
    return;
  }
  var source = new EventSource(log.dataset.stream);
  if (status) {
    status.textContent = "Following the log as the build runs…";
  }
  source.addEventListener("log", function (event) {
    var follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
    log.appendChild(document.createTextNode(event.data));
    var steps = event.data.match(/ step_started step=[A-Za-z0-9_-]+/g);
    if (steps) { setStep(steps[steps.length - 1].split("=")[1]); }
    if (follow) {
      log.scrollTop = log.scrollHeight;
    }
  });
  source.addEventListener("end", function (event) {
    source.close();
    log.dataset.finished = event.data;
    var badge = document.querySelector("h1 .state");
    if (badge) {
      badge.textContent = event.data;
      badge.className = "state state-" + event.data.replace(/[^a-z]/g, "");
    }
    if (status) {
      status.textContent = "The build finished (" + event.data + "). ";
      var again = document.createElement("a");
      again.href = window.location.pathname;
      again.textContent = "Reload for timings and artifacts";
      status.appendChild(again);
    }
  });
})();
