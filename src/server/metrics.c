/* metrics.c - the server's counters, gauges and latency histograms, and their Prometheus text
 * exposition (format 0.0.4: "# HELP", "# TYPE", cumulative _bucket{le=...}, _sum, _count). */
#include "server/server_internal.h"

#include <stdio.h>
#include <string.h>

/* Seconds; time to first token and request duration span milliseconds to minutes, the gap
 * between tokens a millisecond to a second. */
static const double latency_bounds[SRV_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                        1,     2.5,  5,     10,   30,  60,   120};
static const double itl_bounds[SRV_HIST_BUCKETS] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05,
                                                    0.075, 0.1,   0.15,  0.25, 0.5,  1,    2.5};

void srv_metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    m->ttft.bounds = latency_bounds;
    m->duration.bounds = latency_bounds;
    m->itl.bounds = itl_bounds;
}

void srv_metrics_count_status(srv_metrics *m, int http_status) {
    int i;
    for (i = 0; i < SRV_N_STATUS && m->status_code[i]; i++)
        if (m->status_code[i] == http_status) break;
    if (i == SRV_N_STATUS) i = SRV_N_STATUS - 1; /* more distinct codes than slots: lump them */
    if (!m->status_code[i]) m->status_code[i] = http_status;
    m->status_count[i]++;
}

void srv_histogram_observe(srv_histogram *h, double seconds) {
    if (!(seconds >= 0)) seconds = 0;
    int i = 0;
    while (i < SRV_HIST_BUCKETS && seconds > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += seconds;
    h->count++;
}

static bool histogram(srv_buf *o, const char *name, const char *help, const srv_histogram *h) {
    bool ok = srv_buf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < SRV_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        ok = ok && srv_buf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i],
                                  (unsigned long long)cum);
    }
    ok = ok &&
         srv_buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    ok = ok && srv_buf_printf(o, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name,
                              (unsigned long long)h->count);
    return ok;
}

static bool metric(srv_buf *o, const char *name, const char *type, const char *help, double v) {
    return srv_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
                          v);
}

bool srv_metrics_format(const srv_metrics *m, srv_buf *o) {
    bool ok = srv_buf_printf(o, "# HELP quarrel_requests_total HTTP requests answered, by status.\n"
                                "# TYPE quarrel_requests_total counter\n");
    for (int i = 0; i < SRV_N_STATUS && m->status_code[i]; i++)
        ok = ok && srv_buf_printf(o, "quarrel_requests_total{status=\"%d\"} %llu\n",
                                  m->status_code[i], (unsigned long long)m->status_count[i]);
    ok = ok && metric(o, "quarrel_prompt_tokens_total", "counter",
                      "Prompt tokens of admitted requests (evaluated or reused from a slot).",
                      (double)m->prompt_tokens);
    ok = ok && metric(o, "quarrel_prompt_tokens_reused_total", "counter",
                      "Prompt tokens not evaluated again thanks to a slot's cached prefix.",
                      (double)m->prompt_tokens_reused);
    ok = ok && metric(o, "quarrel_generated_tokens_total", "counter", "Tokens generated.",
                      (double)m->generated_tokens);
    ok = ok && metric(o, "quarrel_requests_cancelled_total", "counter",
                      "Generation requests dropped because their client went away.",
                      (double)m->cancelled);
    ok = ok &&
         metric(o, "quarrel_decode_steps_total", "counter",
                "Decode steps (one batch over every busy slot each).", (double)m->decode_steps);
    ok = ok && metric(o, "quarrel_decode_tokens_total", "counter",
                      "Tokens evaluated by the decode steps (prompt chunks and next tokens).",
                      (double)m->decode_tokens);
    ok = ok && metric(o, "quarrel_draft_tokens_total", "counter",
                      "Speculative decoding: tokens drafted (guesses checked by the model).",
                      (double)m->draft_tokens);
    ok = ok && metric(o, "quarrel_draft_tokens_accepted_total", "counter",
                      "Speculative decoding: drafted tokens the model accepted.",
                      (double)m->draft_accepted);
    ok = ok && metric(o, "quarrel_context_shifts_total", "counter",
                      "Context shifts: a full slot dropped half of its cache after n_keep tokens "
                      "(--context-shift).",
                      (double)m->ctx_shifts);
    ok = ok && metric(o, "quarrel_generation_tokens_per_second", "gauge",
                      "Generated tokens per second of decode steps that generated (all slots).",
                      m->gen_seconds > 0 ? (double)m->generated_tokens / m->gen_seconds : 0);
    ok = ok && metric(o, "quarrel_queue_depth", "gauge", "Requests waiting for a slot.",
                      (double)m->queue_depth);
    ok = ok && metric(o, "quarrel_slots_busy", "gauge", "Slots serving a request.",
                      (double)m->slots_busy);
    ok = ok && metric(o, "quarrel_slots_total", "gauge", "Slots (parallel sequences).",
                      (double)m->n_slots);
    ok = ok && metric(o, "quarrel_kv_cache_used_cells", "gauge", "KV cache cells holding a token.",
                      (double)m->kv_used);
    ok =
        ok && metric(o, "quarrel_kv_cache_usage_ratio", "gauge", "Fraction of the KV cache in use.",
                     m->kv_total > 0 ? (double)m->kv_used / (double)m->kv_total : 0);
    ok = ok && histogram(o, "quarrel_time_to_first_token_seconds",
                         "From a request's arrival to its first generated token.", &m->ttft);
    ok = ok && histogram(o, "quarrel_inter_token_latency_seconds",
                         "Between consecutive generated tokens of a request.", &m->itl);
    ok = ok && histogram(o, "quarrel_request_duration_seconds",
                         "From a generation request's arrival to its last token.", &m->duration);
    return ok;
}
