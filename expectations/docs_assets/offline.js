/* motcua-pulse: offline stand-in for the jQuery + bootstrap-table calls in GX Data Docs.
   Data Docs fill their index and result tables with $('#id').bootstrapTable({columns, data});
   this renders those tables as plain HTML (rows link to their pages) and turns every other
   jQuery/Bootstrap/vega call into a no-op, so the pages work without any CDN. */
(function () {
  "use strict";
  function render(table, opts) {
    var cols = opts.columns || [], data = opts.data || [];
    var thead = document.createElement("thead"), tr = document.createElement("tr");
    cols.forEach(function (c) { var th = document.createElement("th"); th.innerHTML = c.title || c.field; tr.appendChild(th); });
    thead.appendChild(tr);
    var tbody = document.createElement("tbody");
    data.forEach(function (row) {
      var r = document.createElement("tr"), link = row._table_row_link_path;
      if (link) { r.className = "clickable-row"; r.setAttribute("data-href", link);
                  r.addEventListener("click", function () { window.location = link; }); }
      cols.forEach(function (c, i) {
        var td = document.createElement("td"), v = row[c.field];
        v = (v === undefined || v === null) ? "" : String(v);
        if (i === 0 && link) { var a = document.createElement("a"); a.href = link; a.innerHTML = v; td.appendChild(a); }
        else { td.innerHTML = v; }
        r.appendChild(td);
      });
      tbody.appendChild(r);
    });
    table.innerHTML = ""; table.appendChild(thead); table.appendChild(tbody);
    table.classList.add("table", "offline-table");
  }
  function Q(target) {
    if (typeof target === "string") { try { this.els = Array.prototype.slice.call(document.querySelectorAll(target)); } catch (e) { this.els = []; } }
    else { this.els = target ? [target] : []; }
    this.length = this.els.length;
  }
  Q.prototype.bootstrapTable = function (opts) {
    if (opts && typeof opts === "object") { this.els.forEach(function (el) { render(el, opts); }); }
    return this;
  };
  Q.prototype.ready = function (fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
    return this;
  };
  Q.prototype.removeClass = function (c) { this.els.forEach(function (el) { el.classList && el.classList.remove(c); }); return this; };
  Q.prototype.addClass = function (c) { this.els.forEach(function (el) { el.classList && el.classList.add(c); }); return this; };
  Q.prototype.data = function (k) { var el = this.els[0]; return el && el.getAttribute ? el.getAttribute("data-" + k) : undefined; };
  ["on", "off", "tooltip", "popover", "collapse", "tab", "modal", "alert", "datepicker", "each", "trigger", "css", "show", "hide"].forEach(function (m) {
    Q.prototype[m] = function () { return this; };
  });
  var $ = function (t) { if (typeof t === "function") { return new Q(document).ready(t); } return new Q(t); };
  $.fn = Q.prototype;
  window.$ = window.jQuery = $;
  window.vegaEmbed = function () { return Promise.resolve(); };
  /* Tabs without Bootstrap's JS: clicking a tab link shows its pane. */
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest('[data-toggle="tab"], [data-toggle="pill"]');
    if (!a) { return; }
    var sel = a.getAttribute("href") || a.getAttribute("data-target");
    var pane = sel && sel.charAt(0) === "#" ? document.querySelector(sel) : null;
    if (!pane) { return; }
    ev.preventDefault();
    Array.prototype.forEach.call(pane.parentNode.children, function (p) { p.classList.remove("active", "show"); });
    pane.classList.add("active", "show");
  });
})();
