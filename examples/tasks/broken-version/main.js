(function (input) {
  return input;
})
