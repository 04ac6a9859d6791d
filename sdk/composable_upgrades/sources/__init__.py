"""Where stack outputs come from: a file, Heat, a config-download directory."""
