// Copy buttons for the snippets on a website's admin page.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var text = document.getElementById(button.getAttribute("data-copy")).textContent;
  navigator.clipboard.writeText(text).then(
    function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); },
    function () { button.textContent = "Select and copy manually"; }
  );
});
