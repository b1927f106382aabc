// condaops status site: optional enhancements. Every page works without this file.
// - copy buttons next to commands;
// - the live build log: appends what the server streams (server-sent events) as text.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
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
