"""The tool's name and version, in a module of their own: the report stamps every run with them, and the
package root (which offers the Python API) must not be an import of the torch-free schema."""

__version__ = "0.1.0"
TOOL_NAME = "skyline-tui"
