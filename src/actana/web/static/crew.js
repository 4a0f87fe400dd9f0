// crew.js: the little behaviour the crew pages have beyond plain forms.
// - "Test" (model endpoints) and "Discover tools" (MCP servers) call the JSON API with the
//   session cookie and the X-CSRF-Token header, and show the verdict.
// - "Add variable" / "Add header" add an empty row; "↑" moves a skill or MCP server up.
// - The MCP form shows only the fields of the chosen transport.
// Everything that comes from the server is set with textContent, never as HTML.
"use strict";

(function () {
  document.documentElement.classList.add("js");

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function postJson(url) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Accept": "application/json",
        "X-CSRF-Token": csrfToken(),
        "X-Requested-With": "fetch"
      }
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          var message = body && body.error && body.error.message;
          throw new Error(message || "the server answered " + response.status);
        }
        return body;
      });
    });
  }

  // Run `call` when `button` is clicked, showing progress, then `show(result)` in `out`.
  function wire(button, out, show) {
    button.addEventListener("click", function () {
      button.disabled = true;
      out.replaceChildren(el("span", "spinner"), el("span", "muted", " working…"));
      postJson(button.getAttribute("data-url")).then(function (result) {
        out.replaceChildren();
        show(result);
      }).catch(function (error) {
        out.replaceChildren(el("p", "flash flash-error", error.message));
      }).finally(function () {
        button.disabled = false;
      });
    });
  }

  function verdict(ok, text) {
    var line = el("p", "verdict");
    line.appendChild(el("span", "badge " + (ok ? "badge-ok" : "badge-bad"), ok ? "ok" : "failed"));
    line.appendChild(document.createTextNode(" " + text));
    return line;
  }

  var testButton = document.getElementById("endpoint-test");
  var testOut = document.getElementById("endpoint-test-result");
  if (testButton && testOut) {
    wire(testButton, testOut, function (r) {
      if (r.ok) {
        testOut.appendChild(verdict(true, r.provider + " · " + r.model + " answered in " + r.latency_ms + " ms"));
        if (r.reply) {
          testOut.appendChild(el("p", "muted", "Reply:"));
          testOut.appendChild(el("pre", "block", r.reply));
        }
      } else {
        var status = r.status ? " (HTTP " + r.status + ")" : "";
        testOut.appendChild(verdict(false, "after " + r.latency_ms + " ms" + status));
        testOut.appendChild(el("pre", "block step-error", r.error || "unknown error"));
      }
    });
  }

  var discoverButton = document.getElementById("mcp-discover");
  var discoverOut = document.getElementById("mcp-discover-result");
  if (discoverButton && discoverOut) {
    wire(discoverButton, discoverOut, function (r) {
      if (!r.ok) {
        discoverOut.appendChild(verdict(false, (r.kind || "error") + " after " + r.latency_ms + " ms"));
        discoverOut.appendChild(el("pre", "block step-error", r.error || "unknown error"));
        return;
      }
      var server = r.server && r.server.name ? r.server.name + " " + (r.server.version || "") : "the server";
      var tools = r.tools || [];
      discoverOut.appendChild(verdict(true, server + " lists " + tools.length + " tool(s) (" + r.latency_ms + " ms)"));
      var list = el("ul", "tool-list");
      tools.forEach(function (tool) {
        var item = el("li");
        item.appendChild(el("code", "", tool.name));
        if (tool.description) item.appendChild(el("span", "muted", " " + tool.description));
        list.appendChild(item);
      });
      discoverOut.appendChild(list);
    });
  }

  // Add an empty row by cloning the last one with the next row number in every name and id.
  function addRow(buttonId, tableId) {
    var button = document.getElementById(buttonId);
    var table = document.getElementById(tableId);
    if (!button || !table) return;
    button.addEventListener("click", function () {
      var rows = table.querySelectorAll("tbody tr[data-row]");
      if (!rows.length) return;
      var last = rows[rows.length - 1];
      var from = last.getAttribute("data-row");
      var to = String(Number(from) + 1);
      var copy = last.cloneNode(true);
      copy.setAttribute("data-row", to);
      copy.querySelectorAll(".field-error").forEach(function (n) { n.remove(); });
      copy.querySelectorAll(".has-error").forEach(function (n) { n.classList.remove("has-error"); });
      copy.querySelectorAll("input").forEach(function (input) {
        ["name", "id"].forEach(function (attr) {
          var value = input.getAttribute(attr);
          if (value) input.setAttribute(attr, value.replace("." + from + ".", "." + to + "."));
        });
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-describedby");
        if (input.type === "checkbox") input.checked = false; else input.value = "";
      });
      last.parentNode.appendChild(copy);
      var first = copy.querySelector("input");
      if (first) first.focus();
    });
  }
  addRow("add-variable", "variables-table");
  addRow("add-header", "headers-table");

  // "↑" moves a skill or MCP server one place up: checkbox order is link order.
  document.querySelectorAll("ul.ordered .move-up").forEach(function (button) {
    button.addEventListener("click", function () {
      var item = button.closest("li");
      var previous = item && item.previousElementSibling;
      if (previous) item.parentNode.insertBefore(item, previous);
    });
  });

  // The MCP form: show the fieldset of the chosen transport only.
  var transport = document.getElementById("transport");
  var sets = document.querySelectorAll(".transport-fields[data-transport]");
  if (transport && sets.length) {
    var sync = function () {
      sets.forEach(function (set) {
        set.classList.toggle("hidden", set.getAttribute("data-transport") !== transport.value);
      });
    };
    transport.addEventListener("change", sync);
    sync();
  }
})();
