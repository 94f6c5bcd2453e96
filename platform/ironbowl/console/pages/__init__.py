"""The console's pages, one module per section of the side bar (see `nav.SECTIONS`)."""
