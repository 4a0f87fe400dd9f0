"""The core tools the agent calls: files, search and shell, all confined to the workspace.

`registry.build_tools` builds them with the run's limits; `registry.Toolbox` calls them.
"""
