// The promotion form's item pickers: category and brand suggestions from the catalogue beside each list,
// and a live "N items match" for the whole item rule (items, categories, brands and their exclusions).
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("promotion-items-config").textContent);
  const form = document.getElementById("promotion_form");
  const anchor = document.getElementById("id_categories");
  if (!form || !anchor) return;  // a read-only view of the promotion: nothing to pick
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]");
  const kinds = {categories: "category", excluded_categories: "category", brands: "brand", excluded_brands: "brand"};

  const box = document.createElement("p");
  box.id = "items-match";
  box.className = "audience-count";
  box.setAttribute("aria-live", "polite");
  anchor.closest("fieldset").appendChild(box);

  let timer = null, sequence = 0;
  function countSoon() { clearTimeout(timer); timer = setTimeout(count, 300); }
  async function count() {
    const mine = ++sequence;
    const body = new FormData(form);
    const response = await fetch(config.matchingUrl, {method: "POST", body: body,
                                                      headers: {"X-CSRFToken": csrf ? csrf.value : ""}});
    const data = await response.json().catch(() => ({error: "The count failed (" + response.status + ")."}));
    if (mine !== sequence) return;
    box.classList.toggle("error", !!data.error);
    if (data.error) { box.textContent = data.error; return; }
    box.replaceChildren();
    const strong = document.createElement("strong");
    strong.id = "items-match-count";
    strong.textContent = data.items.toLocaleString();
    box.append(strong, ` item${data.items === 1 ? "" : "s"} match (${data.offerable.toLocaleString()} active and in stock).`);
  }

  function picker(name) {
    const textarea = document.getElementById("id_" + name);
    if (!textarea) return;
    const list = document.createElement("datalist");
    list.id = "options-" + name;
    const input = document.createElement("input");
    input.type = "search";
    input.id = "pick-" + name;
    input.setAttribute("list", list.id);
    input.setAttribute("autocomplete", "off");
    input.placeholder = kinds[name] === "category" ? "Find a category…" : "Find a brand…";
    const wrapper = document.createElement("div");
    wrapper.className = "item-picker";
    wrapper.append(input, list);
    textarea.insertAdjacentElement("afterend", wrapper);

    let lookup = null;
    input.addEventListener("input", () => {
      const chosen = [...list.options].find(option => option.value === input.value);
      if (chosen) return add(input.value);
      clearTimeout(lookup);
      lookup = setTimeout(async () => {
        const url = `${config.catalogueUrl}?kind=${kinds[name]}&q=${encodeURIComponent(input.value)}`;
        const data = await (await fetch(url)).json().catch(() => ({options: []}));
        list.replaceChildren(...(data.options || []).map(option => {
          const node = document.createElement("option");
          node.value = option.value;
          node.label = `${option.items.toLocaleString()} item${option.items === 1 ? "" : "s"}`;
          return node;
        }));
      }, 200);
    });
    input.addEventListener("keydown", event => {
      if (event.key === "Enter") { event.preventDefault(); if (input.value.trim()) add(input.value.trim()); }
    });
    function add(value) {
      const lines = textarea.value.split("\n").map(line => line.trim()).filter(Boolean);
      if (!lines.includes(value)) lines.push(value);
      textarea.value = lines.join("\n");
      input.value = "";
      countSoon();
    }
    textarea.addEventListener("input", countSoon);
  }

  Object.keys(kinds).forEach(picker);
  // The item fields are select2 widgets, whose changes jQuery announces.
  if (window.django && django.jQuery) django.jQuery("#id_items, #id_excluded_items").on("change", countSoon);
  count();
}());
