/*
 * /Library/bootstrapper/bin/bootstrapper: what the launchd plists and admins run.
 *
 * A signed binary rather than a shell script, so that the program launchd starts carries our
 * Developer ID (Login Items settings, the Managed Login Items profile and codesign can all name it)
 * and nothing interprets text at start-up. It does one thing: exec the bundled interpreter in
 * isolated mode (-I: no PYTHON* variables, no user site-packages) with `-m bootstrapper` and our
 * arguments. The interpreter's path is fixed at build time (-DBOOTSTRAPPER_INTERPRETER); it looks
 * nothing up in the environment or PATH. Exit 3 ("unexpected", as the CLI uses it) when the
 * interpreter cannot be run: the install is broken and only a reinstall fixes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef BOOTSTRAPPER_INTERPRETER
#error "build with -DBOOTSTRAPPER_INTERPRETER=\"/absolute/path/to/python3.X\""
#endif

#define EXIT_UNEXPECTED 3
#define FIXED_ARGS 4 /* interpreter, -I, -m, bootstrapper */

int main(int argc, char *argv[])
{
    static const char interpreter[] = BOOTSTRAPPER_INTERPRETER;
    size_t extra = argc > 1 ? (size_t)argc - 1 : 0;
    char **args;
    size_t i;

    if (interpreter[0] != '/') {
        fprintf(stderr, "bootstrapper: the launcher was built with a relative interpreter path (%s); "
                        "rebuild it with an absolute one\n", interpreter);
        return EXIT_UNEXPECTED;
    }
    args = calloc(FIXED_ARGS + extra + 1, sizeof *args);
    if (args == NULL) {
        fprintf(stderr, "bootstrapper: out of memory starting %s\n", interpreter);
        return EXIT_UNEXPECTED;
    }
    args[0] = (char *)interpreter;
    args[1] = "-I";
    args[2] = "-m";
    args[3] = "bootstrapper";
    for (i = 0; i < extra; i++)
        args[FIXED_ARGS + i] = argv[i + 1];
    args[FIXED_ARGS + extra] = NULL;
    execv(interpreter, args);
    fprintf(stderr, "bootstrapper: cannot run the bundled Python %s: %s; reinstall the bootstrapper package\n",
            interpreter, strerror(errno));
    return EXIT_UNEXPECTED;
}
