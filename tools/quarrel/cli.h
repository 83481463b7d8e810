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
int cmd_imatrix(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_export_lora(int argc, char **argv);

/* Bytes as ollama shows them ("1.2 MB", "260 KB", "12 B": powers of 1000). */
void cli_format_bytes(int64_t bytes, char *buf, size_t size);

/* Print "quarrel: <what>: <qr_last_error()>" to stderr; returns 1. */
int cli_fail(const char *what);
/* The exit status for a failed step: 2 when the input is valid but not supported (an unknown
 * architecture or tensor type), 1 otherwise; prints as cli_fail. */
int cli_fail_status(const char *what, qr_status st);
/* qr_model_load, printing the failure; returns 0 or cli_fail_status's exit status */
int cli_load_model(const char *path, const qr_model_params *mp, qr_model **out);
/* Reads the text of file (unless file is NULL), loads the model at path (cli_load_model) and
 * tokenizes the text for evaluation (qr_eval_tokenize: *tokens to free, or NULL without a file);
 * returns 0, or the exit status after printing the failure (nothing left to free). */
int cli_load_model_text(const char *path, const char *file, qr_model **model, qr_token **tokens,
                        int32_t *n_tokens);

#endif
