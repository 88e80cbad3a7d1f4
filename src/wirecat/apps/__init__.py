"""The jobs wirecat does, one module each; the CLI is a thin shell over these."""
