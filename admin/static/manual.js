// 人工办理: a notice while an export or an import runs, and when the export is done
// (the export answers with a cookie carrying the token of its link).
(function () {
  "use strict";
  var notice = document.getElementById("manual-progress");
  if (!notice) { return; }
  function show(text) { notice.textContent = text; notice.hidden = false; }
  document.querySelectorAll("a.manual-export").forEach(function (link) {
    link.addEventListener("click", function () {
      var token = String(Date.now()) + String(Math.floor(Math.random() * 1e6));
      var url = new URL(link.href, window.location.href);
      url.searchParams.set("token", token);
      link.href = url.toString();
      show("正在导出，请稍候……（案件多、材料多时需要较长时间）");
      var timer = window.setInterval(function () {
        if (document.cookie.indexOf("manual_export_done=" + token) !== -1) {
          window.clearInterval(timer);
          show("导出完成：请在浏览器的下载中查看压缩包（工作簿和材料文件夹）。");
        }
      }, 500);
    });
  });
  var form = document.getElementById("manual-import");
  if (form) {
    form.addEventListener("submit", function () {
      show("正在导入，请勿关闭页面……（导入完成后本页显示结果）");
    });
  }
})();
