"""The manifest: one frozen model, two spellings (native YAML and InstallApplications' JSON)."""
