"""Reading and writing the YAML and JSON this project handles, and its package data."""
