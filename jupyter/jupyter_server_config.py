"""JupyterLab server settings used by `make lab` (passed with --config).

The Portuguese UI itself is chosen in jupyter/overrides.json, which `make setup` copies to
.venv/share/jupyter/lab/settings/. Jupyter's own state (runtime files, user settings,
workspaces) lives under .cache/ in the project: see the exports at the top of the Makefile.
"""
c = get_config()  # noqa: F821  (provided by traitlets when the file is loaded)

# Local use by one person: the server listens on 127.0.0.1 only (the Makefile passes --ip).
c.ServerApp.open_browser = False
# Deleting a file from the file browser removes it instead of moving it to ~/.local/share/Trash.
c.FileContentsManager.delete_to_trash = False
# Terminals open bash in the notebooks folder, with the venv's `labkit` on PATH.
c.ServerApp.terminado_settings = {"shell_command": ["/bin/bash"]}
# No language servers are installed: skip jupyter-lsp's search (it runs `npm prefix --global`,
# which writes ~/.npm/_logs).
c.LanguageServerManager.autodetect = False
