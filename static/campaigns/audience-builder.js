// The audience rule builder: edits the rules JSON of the form (textarea#id_rules) and shows a live count.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("builder-config").textContent);
  const textarea = document.getElementById("id_rules");
  const root = document.getElementById("rule-builder");
  const countBox = document.getElementById("audience-count");
  const token = document.querySelector("input[name=csrfmiddlewaretoken]");
  const csrf = token ? token.value : "";
  // A reader's page has no rules field: the builder then shows the stored rules with every control disabled.
  const readOnly = config.readOnly || !textarea;
  const readOnlyRow = document.querySelector(".form-row.field-rules");
  if (textarea) textarea.closest(".form-row").style.display = "none";  // the builder edits it
  else if (readOnlyRow) readOnlyRow.style.display = "none";  // the raw JSON: the builder shows it

  let rules;
  try { rules = textarea ? JSON.parse(textarea.value || "{}") : config.rules; } catch (e) { rules = {}; }
  if (!rules || !Array.isArray(rules.rules)) rules = {match: "all", rules: []};

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "text") node.textContent = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
    });
    (children || []).forEach(child => node.appendChild(child));
    return node;
  }

  function select(options, value, onchange, cls) {
    const node = el("select", {class: cls || "", onchange: e => onchange(e.target.value)});
    options.forEach(([v, label]) => {
      const option = el("option", {value: v, text: label});
      if (String(v) === String(value)) option.selected = true;
      node.appendChild(option);
    });
    return node;
  }

  function input(value, onchange, attrs) {
    return el("input", Object.assign({type: "text", value: value ?? "", oninput: e => onchange(e.target.value)}, attrs || {}));
  }

  function newRule() {
    const field = Object.keys(config.fields)[0];
    return {field: field, op: config.fields[field].ops[0], value: ""};
  }

  function renderRule(rule, parent, index) {
    const spec = config.fields[rule.field];
    const row = el("div", {class: "rule-row"});
    row.appendChild(select(Object.entries(config.fields).map(([k, f]) => [k, f.label]), rule.field, v => {
      parent.rules[index] = {field: v, op: config.fields[v].ops[0], value: ""}; changed(true);
    }, "rule-field"));
    if (spec.key) row.appendChild(input(rule.key, v => { rule.key = v; changed(); }, {placeholder: "name, e.g. age", class: "rule-key"}));
    if (spec.promotion) {
      const options = [["", "— promotion —"]].concat(config.promotions.map(p => [p.id, p.name]));
      row.appendChild(select(options, rule.promotion, v => { rule.promotion = v; changed(); }, "rule-promotion"));
    }
    row.appendChild(select(spec.ops.map(op => [op, config.ops[op] || op]), rule.op, v => { rule.op = v; changed(); }, "rule-op"));
    row.appendChild(input(rule.value, v => { rule.value = spec.value === "number" && v !== "" && !isNaN(v) ? Number(v) : v; changed(); },
      {placeholder: spec.value === "number" ? "number" : "value", class: "rule-value"}));
    if (spec.days) {
      row.appendChild(el("span", {text: "within"}));
      row.appendChild(input(rule.days, v => { rule.days = v === "" ? undefined : Number(v); changed(); }, {class: "days rule-days", placeholder: "365"}));
      row.appendChild(el("span", {text: "days"}));
    }
    row.appendChild(el("button", {type: "button", class: "button rule-remove", text: "✕", title: "remove",
      onclick: () => { parent.rules.splice(index, 1); changed(true); }}));
    return row;
  }

  function renderGroup(group, parent, index, depth) {
    const box = el("div", {class: "rule-group"});
    const head = el("div", {class: "rule-row"}, [
      el("span", {text: "Customers matching"}),
      select([["all", "all"], ["any", "any"]], group.match || "all", v => { group.match = v; changed(); }, "rule-match"),
      el("span", {text: "of these rules:"}),
    ]);
    if (parent) head.appendChild(el("button", {type: "button", class: "button", text: "remove group",
      onclick: () => { parent.rules.splice(index, 1); changed(true); }}));
    box.appendChild(head);
    group.rules.forEach((rule, i) => box.appendChild(rule.rules ? renderGroup(rule, group, i, depth + 1) : renderRule(rule, group, i)));
    const tools = el("div", {class: "rule-row"}, [
      el("button", {type: "button", class: "button add-rule", text: "+ rule", onclick: () => { group.rules.push(newRule()); changed(true); }}),
    ]);
    if (depth < 3) tools.appendChild(el("button", {type: "button", class: "button add-group", text: "+ group (all/any)",
      onclick: () => { group.rules.push({match: "any", rules: [newRule()]}); changed(true); }}));
    box.appendChild(tools);
    return box;
  }

  function render() {
    root.replaceChildren(renderGroup(rules, null, 0, 0));
    if (!readOnly) return;
    root.querySelectorAll("input, select").forEach(control => { control.disabled = true; });
    root.querySelectorAll("button").forEach(button => button.remove());
  }

  let timer = null;
  function changed(rerender) {
    if (textarea) textarea.value = JSON.stringify(rules);
    if (rerender) render();
    clearTimeout(timer);
    timer = setTimeout(count, 400);
  }

  let sequence = 0;
  async function count() {
    const mine = ++sequence;
    countBox.classList.remove("error");
    countBox.textContent = "Counting…";
    const response = await fetch(config.countUrl, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify({rules: rules}),
    });
    const data = await response.json().catch(() => ({error: "The count failed (" + response.status + ")."}));
    if (mine !== sequence) return;  // a newer count is on its way
    if (!response.ok || data.error) {
      countBox.classList.add("error");
      countBox.textContent = data.error || ("The count failed (" + response.status + ").");
      return;
    }
    const ex = data.excluded;
    countBox.replaceChildren(
      el("strong", {id: "count-contactable", text: data.contactable.toLocaleString()}),
      el("span", {text: " customers can be reached, of "}),
      el("strong", {id: "count-total", text: data.total.toLocaleString()}),
      el("span", {text: " matching. Left out: " + ex.no_consent.toLocaleString() + " without consent, " +
        ex.unsubscribed.toLocaleString() + " unsubscribed, " + ex.suppressed.toLocaleString() + " suppressed, " +
        ex.no_email.toLocaleString() + " without an e-mail address."}),
    );
  }

  render();
  changed(false);
})();
