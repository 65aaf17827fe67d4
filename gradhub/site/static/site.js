/* gradhub method catalog: filters the list of methods as you type, and copies code blocks.
   Plain JavaScript, no framework, nothing fetched: the pages work from file://.
   Without this script every page is complete; the filters stay hidden and the text is there to select. */
(function () {
  "use strict";

  function terms(text) {
    return text.toLowerCase().split(/\s+/).filter(function (term) { return term.length > 0; });
  }

  function hasWord(list, word) {
    return (list || "").split(" ").indexOf(word) !== -1;
  }

  function setUpFilters() {
    var form = document.getElementById("filters");
    var table = document.getElementById("methods");
    if (!form || !table) {
      return;
    }
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var search = form.elements.namedItem("q");
    var kind = form.elements.namedItem("kind");
    var tag = form.elements.namedItem("tag");
    var capability = form.elements.namedItem("capability");
    var count = document.getElementById("count");
    var none = document.getElementById("no-match");

    function apply() {
      var wanted = terms(search.value);
      var shown = 0;
      rows.forEach(function (row) {
        var text = row.getAttribute("data-search") || "";
        var match = wanted.every(function (term) { return text.indexOf(term) !== -1; }) &&
          (!kind.value || row.getAttribute("data-kind") === kind.value) &&
          (!tag.value || hasWord(row.getAttribute("data-tags"), tag.value)) &&
          (!capability.value || hasWord(row.getAttribute("data-caps"), capability.value));
        row.hidden = !match;
        if (match) {
          shown += 1;
        }
      });
      var noun = rows.length === 1 ? " method" : " methods";
      count.textContent = shown === rows.length ? rows.length + noun : shown + " of " + rows.length + noun;
      none.hidden = shown !== 0;
    }

    form.addEventListener("input", apply);
    form.addEventListener("change", apply);
    form.addEventListener("reset", function () { window.setTimeout(apply, 0); });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    form.hidden = false;
    apply();  /* a browser may restore the fields' values when the page is revisited */
  }

  function selectContents(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function setUpCopyButtons() {
    var buttons = document.querySelectorAll("button[data-copy]");
    Array.prototype.forEach.call(buttons, function (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      var status = button.nextElementSibling;
      if (!source) {
        return;
      }
      function say(text) {
        if (status) {
          status.textContent = text;
        }
      }
      function fallback() {
        /* No clipboard API here (an old browser, or permission refused): select the text and try the old command. */
        selectContents(source);
        var copied = false;
        try {
          copied = document.execCommand("copy");
        } catch (error) {
          copied = false;
        }
        say(copied ? "Copied." : "Selected: press Ctrl+C (Cmd+C) to copy.");
      }
      button.addEventListener("click", function () {
        var text = source.textContent;
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(text).then(function () { say("Copied."); }, fallback);
        } else {
          fallback();
        }
      });
      button.hidden = false;
    });
  }

  setUpFilters();
  setUpCopyButtons();
}());
