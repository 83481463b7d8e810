/* cli.h - the quarrel command-line tool: one file per subcommand (cmd_<name>.c), each using
 * only the public header. Every command returns the process exit status. */
#ifndef QR_CLI_H
#define QR_CLI_H

#include "quarrel.h"

int cmd_inspect(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_eval(int argc, char **argv);

/* Print "quarrel: <what>: <qr_last_error()>" to stderr; returns 1. */
int cli_fail(const char *what);

#endif
