"""nbgrader's ``OverwriteCells`` for a release whose test cells have hidden tests.

``nbgrader generate_assignment`` stores each locked cell in the gradebook *with* its hidden tests and
strips them from the release, so every unchanged test cell of every hand-in differs from the
gradebook, and ``nbgrader autograde`` warns "Attribute 'checksum' for cell pN_tests has changed!"
for cells nobody touched. ``RestoreHiddenTests`` first recognises a cell whose source is exactly the
gradebook's source with the hidden region removed (by nbgrader's own ``ClearHiddenTests``) and puts
the hidden tests back; only a cell that really was edited reaches nbgrader's warning and repair.
Configured in ``nbgrader_config.py`` (``c.Autograde.sanitize_preprocessors``).
"""
from __future__ import annotations

import copy

from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells

from autograder.assignment import metadata


class RestoreHiddenTests(OverwriteCells):
    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = metadata.grade_id(cell)
        if grade_id is not None and metadata.is_locked(cell):
            try:
                source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                source_cell = None
            if source_cell is not None and cell.source == self._released(cell, source_cell.source):
                cell.source = source_cell.source
        return super().preprocess_cell(cell, resources, cell_index)

    def _released(self, cell, source: str) -> str:
        """What the release holds for a cell whose gradebook source is ``source``."""
        released = copy.deepcopy(cell)
        released.source = source
        ClearHiddenTests(parent=self)._remove_hidden_test_region(released)
        return released.source
