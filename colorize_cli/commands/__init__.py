"""One module per subcommand; each function only parses options and calls the library."""
