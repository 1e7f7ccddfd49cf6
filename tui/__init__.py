"""srcockpit's faces: the CLI, the headless console and the Textual cockpit. Never imports torch at start-up."""
