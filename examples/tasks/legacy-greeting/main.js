(function (input) {
  return { greeting: "Hello, " + (input.name || "world") + "!" };
})
