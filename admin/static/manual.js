// 人工办理: the background exports and imports (admin/jobs.py). While a job of the list
// is queued or running, its state and progress are asked every second; when it ends, a
// notice says so — with the download link of an export's zip — and an import's page
// shows its report.
(function () {
  "use strict";
  var notice = document.getElementById("manual-progress");
  if (!notice) { return; }
  function show(text, link, kind) {
    notice.textContent = text;
    notice.className = "flash " + (kind || "ok");
    if (link) {
      var a = document.createElement("a");
      a.className = "job-download";
      a.href = link;
      a.textContent = "下载压缩包";
      notice.appendChild(document.createTextNode(" "));
      notice.appendChild(a);
    }
    notice.hidden = false;
  }
  function cell(row, name) { return row.querySelector("." + name); }
  function update(row, job) {
    cell(row, "job-state").textContent = job.state_name;
    cell(row, "job-progress").textContent = job.total ? job.done + " / " + job.total
      : (job.state === "queued" || job.state === "running" ? "准备中" : "");
    cell(row, "job-finished").textContent = job.finished;
    var result = cell(row, "job-result");
    result.textContent = job.note;
    if (job.download) {
      result.textContent = "";
      var a = document.createElement("a");
      a.className = "job-download";
      a.href = job.download;
      a.textContent = "下载压缩包";
      result.appendChild(a);
    }
    row.dataset.state = job.state;
  }
  function watch(row) {
    var timer = window.setInterval(function () {
      fetch(row.dataset.url, {credentials: "same-origin", headers: {Accept: "application/json"}})
        .then(function (resp) { return resp.ok ? resp.json() : null; })
        .then(function (job) {
          if (!job) { window.clearInterval(timer); return; }
          update(row, job);
          if (job.state === "queued" || job.state === "running") { return; }
          window.clearInterval(timer);
          if (job.state === "failed") {
            show(job.notice, null, "error");
          } else if (job.download) {
            show(job.notice, job.download);
          } else if (job.report) {
            window.location.assign(job.report);
          }
        })
        .catch(function () { /* the next tick asks again */ });
    }, 1000);
  }
  document.querySelectorAll("#manual-jobs tr.job").forEach(function (row) {
    if (row.dataset.state === "queued" || row.dataset.state === "running") { watch(row); }
  });
  var form = document.getElementById("manual-import");
  if (form) {
    form.addEventListener("submit", function () {
      show("正在上传，请稍候……（导入在后台进行，本页显示进度和结果）");
    });
  }
})();
