"""The command frame: argparse, --json, exit statuses, and start-up under NXLog."""

import argparse
import os

from nxlog_s3.common.runtime import EXIT_CONFIG, EXIT_WARNED, NXLOG, SCRIPT, VERSION
from nxlog_s3.common.settings import ConfigError, _flag_name


def refuse_to_start(exc):
    """What NXLog does with a bad directive: one line in its log, and no start (an exception
    at import would leave NXLog running, this module deaf). Its inputs have read nothing."""
    NXLOG.log_error(str(exc))
    os._exit(EXIT_CONFIG)


def start_under_nxlog(kind, settings_kind, namespace, source):
    """Builds the writer or reader KIND from the settings at the top of the script SOURCE
    (NAMESPACE: its globals()) and NXLOG_S3_*, and starts it; a setting that can never work
    keeps NXLog from starting, with one line."""
    try:
        return kind(settings_kind.of_script(namespace, source)).start()
    except ConfigError as exc:
        refuse_to_start(exc)


def check_command(part, arguments):
    """`check`: what NXLog's start of PART (a Writer or Reader) would check, with the line it
    would log at start on stdout; its warnings on stderr, and EXIT_WARNED for them."""
    print("%s: NXLog would start: %s" % (SCRIPT, part.check()))
    return EXIT_WARNED if part.log.problems else 0


def not_found_where_looked(what, path, none_yet, setting):
    """The warning of a command that found no WHAT (spool, checkpoint) at PATH: NONE_YET
    says what that means, and the rest where the one NXLog uses may lie instead."""
    return ("no %s at %s: %s. A relative %s lies in NXLog's SpoolDir: run this there, as the "
            "user NXLog runs as, or give --%s" % (what, path, none_yet, setting,
                                                  _flag_name(setting)))


JSON_OPTION = ("--json", {"action": "store_true", "help": "one JSON object, for programs"})


def run_command(argv, kind, namespace, source, commands):
    """The script as a command, with no NXLog: COMMANDS maps each command's name to (its
    help, a function returning an exit status, its options). Settings come from the
    same places as under NXLog, and flags override them. A setting that can never work
    exits with EXIT_CONFIG and the message NXLog would log. A command's OPTIONS are
    (flag, argparse keywords) pairs; its function is given the settings and the arguments."""
    defaults = kind.defaults_in(namespace)
    parser = argparse.ArgumentParser(
        prog=os.path.basename(source), description="%s run as a command, outside NXLog. "
        "Exit status: 0 done; %d done, with a warning on stderr; 2 bad usage; %d a setting "
        "that can never work (NXLog would not start)." % (SCRIPT, EXIT_WARNED, EXIT_CONFIG))
    version = {"action": "version", "help": "print the release and exit",
               "version": "%s (nxlog-s3) %s" % (os.path.basename(source), VERSION)}
    parser.add_argument("--version", **version)
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    subcommands.required = True
    for name, (summary, _, options) in sorted(commands.items()):
        command = subcommands.add_parser(name, help=summary, description=summary)
        command.add_argument("--version", **version)
        for flag, keywords in options:
            command.add_argument(flag, **keywords)
        group = command.add_argument_group("settings (each overrides NXLOG_S3_<NAME> and the "
                                           "top of %s)" % os.path.basename(source))
        for setting, _ in kind.SPEC:
            group.add_argument("--" + _flag_name(setting), dest=setting, metavar="VALUE",
                               help="%s (default: %r)" % (setting, defaults[setting]))
    arguments = parser.parse_args(argv)
    flags = {name: getattr(arguments, name) for name, _ in kind.SPEC}
    try:
        return commands[arguments.command][1](kind.of_script(namespace, source, flags),
                                              arguments)
    except ConfigError as exc:
        NXLOG.log_error(str(exc))
        return EXIT_CONFIG
