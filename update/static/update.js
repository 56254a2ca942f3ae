// 「ソフトウェア更新」: while an update is being installed, read /update/progress every 2 s and move the bar.
// Only numbers and text go into the page (textContent), never HTML.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("update-progress");
  if (!box || box.getAttribute("data-active") !== "1") { return; }
  var bar = box.querySelector("progress");
  var text = box.querySelector(".progress-text");
  var polls = 0;
  function poll() {
    polls += 1;
    if (polls > 1800) { return; }  // an hour at most; the page can be opened again
    fetch(box.getAttribute("data-url"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { window.setTimeout(poll, 5000); return; }
        bar.value = data.percent;
        text.textContent = data.percent + " %" + (data.message ? "　" + data.message : "");
        if (!data.active) { window.location.reload(); return; }
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });  // the box is rebooting: keep trying
  }
  window.setTimeout(poll, 2000);
});
