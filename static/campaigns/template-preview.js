// The campaign form's live preview: the subject and body templates rendered for a sample customer, beside
// the body's textarea, as the marketer types. "Another customer" walks through the contactable ones.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("template-preview-config").textContent);
  const form = document.getElementById("campaign_form");
  const body = document.getElementById("id_body_template");
  const subject = document.getElementById("id_subject_template");
  if (!form || !body || !subject) return;  // a read-only view: nothing is edited
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]");

  const pane = document.createElement("div");
  pane.id = "template-preview";
  pane.className = "template-preview";
  pane.innerHTML = '<div class="preview-head"><strong>Preview</strong> for <span id="preview-customer">…</span> ' +
    '<button type="button" class="button" id="preview-next">Another customer</button></div>' +
    '<div id="preview-error" class="audience-count error" hidden></div>' +
    '<div class="preview-subject">Subject: <span id="preview-subject"></span></div>' +
    '<iframe id="preview-html" class="preview-frame" sandbox title="HTML preview"></iframe>' +
    '<details><summary>Plain text</summary><pre id="preview-text"></pre></details>';
  const row = body.closest(".form-row");
  row.classList.add("with-preview");
  body.closest("div").insertAdjacentElement("afterend", pane);

  let sample = 0, timer = null, sequence = 0;
  function soon() { clearTimeout(timer); timer = setTimeout(render, 350); }
  async function render() {
    const mine = ++sequence;
    const data = new FormData(form);
    data.set("sample", String(sample));
    // The promotions widget (filter_horizontal) lists the chosen ones in #id_promotions_to, selected only
    // when the form is submitted: read them from there.
    const chosen = document.getElementById("id_promotions_to");
    if (chosen) {
      data.delete("promotions");
      [...chosen.options].forEach(option => data.append("promotions", option.value));
    }
    const response = await fetch(config.previewUrl, {method: "POST", body: data,
                                                     headers: {"X-CSRFToken": csrf ? csrf.value : ""}});
    const answer = await response.json().catch(() => ({error: "The preview failed (" + response.status + ")."}));
    if (mine !== sequence) return;
    const error = document.getElementById("preview-error");
    error.hidden = !answer.error;
    error.textContent = answer.error || "";
    if (answer.error) return;
    document.getElementById("preview-customer").textContent = answer.customer;
    document.getElementById("preview-subject").textContent = answer.subject;
    document.getElementById("preview-html").srcdoc = answer.html;
    document.getElementById("preview-text").textContent = answer.text;
  }
  document.getElementById("preview-next").addEventListener("click", () => { sample += 1; render(); });
  [body, subject].forEach(field => field.addEventListener("input", soon));
  // Choosing or removing a promotion in the widget changes #id_promotions_to's options.
  const watch = () => {
    const chosen = document.getElementById("id_promotions_to");
    if (chosen) new MutationObserver(soon).observe(chosen, {childList: true});
  };
  if (document.readyState === "complete") watch(); else window.addEventListener("load", watch);
  render();
}());
