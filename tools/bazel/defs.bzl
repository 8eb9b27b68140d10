"""Rules shared by the BUILD files: pytest modules as py_test targets, console entry points."""

# What every test may import: the libraries, the configs and all of tests/ (test modules import
# helpers and one another).
_TEST_DEPS = [
    "//configs",
    "//data_prep",
    "//sscs_tf",
    "//tests:testing",
]

_RUNNER = "//tools/bazel:pytest_main.py"

def pytest_test(name, src, pytest_args = [], deps = [], data = [], tags = [], **kwargs):
    """One pytest module as a py_test: tools/bazel/pytest_main.py runs pytest on it.

    Args:
      name: the target name.
      src: the test module.
      pytest_args: more arguments for pytest (a -m marker expression).
      deps: more py_library targets it imports.
      data: more files it reads.
      tags: Bazel tags.
      **kwargs: passed on to py_test (size, timeout, ...).
    """
    native.py_test(
        name = name,
        srcs = [src, _RUNNER],
        main = _RUNNER,
        args = ["$(rootpath %s)" % src] + pytest_args,
        deps = _TEST_DEPS + deps,
        # pytest.ini gives pytest its rootdir and markers, as when run from the checkout.
        data = ["//:pytest.ini"] + data,
        # No __init__.py added to the runfiles: the packages are the checkout's.
        legacy_create_init = False,
        python_version = "PY3",
        srcs_version = "PY3",
        tags = tags,
        **kwargs
    )

def pytest_modules(slow = [], smoke = [], data = {}, timeout = "long"):
    """A py_test for every test_*.py under this package, named by its path without ".py".

    Args:
      slow: modules (paths without ".py") that have tests marked @pytest.mark.slow. Each gets
        two targets: NAME runs the others (pytest -m "not slow"), NAME_slow runs these and is
        tagged "slow". So `--test_tag_filters=-slow` runs what `pytest -m "not slow"` runs.
        A name with no module is ignored: the list may run ahead of a module's arrival. A
        module that has slow tests but is not listed runs them all in its one target.
      smoke: modules whose target (the one without the slow tests) is also tagged "smoke":
        a quick check that the Bazel build and its test runner work,
        `--test_tag_filters=smoke` (what .ci/run runs after pytest has run every test).
      data: module -> more files it reads (labels), for a test that reads the checkout's own
        files beyond the Python sources.
      timeout: Bazel's timeout class for every module ("long": 900 s).
    """
    modules = [src[:-len(".py")] for src in native.glob(["**/test_*.py"])]
    for module in modules:
        tags = ["smoke"] if module in smoke else []
        if module not in slow:
            pytest_test(
                name = module,
                src = module + ".py",
                data = data.get(module, []),
                tags = tags,
                timeout = timeout,
            )
            continue
        pytest_test(
            name = module,
            src = module + ".py",
            # Bazel splits args as a shell does: the quotes keep the expression one word.
            pytest_args = ["-m", "'not slow'"],
            data = data.get(module, []),
            tags = tags,
            timeout = timeout,
        )
        pytest_test(
            name = module + "_slow",
            src = module + ".py",
            pytest_args = ["-m", "slow"],
            data = data.get(module, []),
            tags = ["slow"],
            timeout = timeout,
        )

def _entry_point_main_impl(ctx):
    module, _, function = ctx.attr.entry_point.partition(":")
    out = ctx.actions.declare_file(ctx.label.name + ".py")
    ctx.actions.write(out, "\n".join([
        "# Runs %s, as the console script of the same name does." % ctx.attr.entry_point,
        "import os",
        "import sys",
        "",
        "import %s as entry_module" % module,
        "",
        "# absl's --help shows the __main__ module's docstring: the tool's own.",
        "__doc__ = entry_module.__doc__",
        "# bazel run starts in the runfiles tree; paths on the command line are the caller's.",
        'if os.environ.get("BUILD_WORKING_DIRECTORY"):',
        '  os.chdir(os.environ["BUILD_WORKING_DIRECTORY"])',
        "sys.exit(entry_module.%s())" % function,
        "",
    ]))
    return [DefaultInfo(files = depset([out]))]

_entry_point_main = rule(
    implementation = _entry_point_main_impl,
    attrs = {"entry_point": attr.string(mandatory = True)},
)

def py_entry_point(name, entry_point, deps):
    """A py_binary that calls `module:function`, as setup.py's console_scripts do.

    Args:
      name: the target name (the console script's name).
      entry_point: "package.module:function".
      deps: the py_library targets that hold the module.
    """
    main = name.replace("-", "_") + "_main"
    _entry_point_main(name = main, entry_point = entry_point)
    native.py_binary(
        name = name,
        srcs = [":" + main],
        main = main + ".py",
        deps = deps,
        legacy_create_init = False,
        python_version = "PY3",
        srcs_version = "PY3",
    )
