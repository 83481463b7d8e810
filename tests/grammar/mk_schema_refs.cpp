/* mk_schema_refs.cpp - llama.cpp's answers for the JSON schema converter tests (not part of the
 * CMake build; the peer's prebuilt libraries and llama.cpp's headers are only on the dev box).
 *
 *   mk_schema_refs schema_cases.json schema_refs.json
 *       per case of schema_cases.json ({name, schema, instances}; schema is a JSON value or a
 *       string holding the schema text): llama.cpp's json_schema_to_grammar() output (or its
 *       error), and per instance whether llama.cpp's grammar engine accepts the whole string.
 *   mk_schema_refs --check schema_refs.json grammars.json
 *       grammars.json is {name: grammar text or null}: runs every instance of schema_refs.json
 *       through the given grammar with llama.cpp's engine and reports each instance whose
 *       acceptance differs from llama.cpp's own grammar, and cases with a quarrel_error
 *       (where Quarrel fails on purpose) that it converts (exit 1 if any).
 *
 * Build (from the repository root):
 *   B=/tmp/peer/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64 L=/tmp/llama-src
 *   g++ -std=c++17 -O1 -I$L/common -I$L/include -I$L/src -I$L/ggml/include \
 *       tests/grammar/mk_schema_refs.cpp -o /tmp/mk_schema_refs \
 *       $B/libllama-common.so $B/libllama.v0.5.0.so $B/libggml.v0.5.0.so $B/libggml-base.so \
 *       -Wl,-rpath,$B
 */
#include "json-schema-to-grammar.h"
#include "json.h"
#include "llama-grammar.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

static std::string read_all(const char *path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error(std::string("cannot read ") + path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

/* UTF-8 to code points; an invalid byte is passed on as itself (cases avoid them) */
static std::vector<uint32_t> code_points(const std::string &s) {
    std::vector<uint32_t> out;
    for (size_t i = 0; i < s.size();) {
        unsigned char c = (unsigned char)s[i];
        int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
        for (int k = 1; k < n && i + k < s.size(); k++) cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3f);
        out.push_back(cp);
        i += n;
    }
    return out;
}

/* 1 accepted, 0 rejected, -1 the grammar does not parse */
static int grammar_accepts(const std::string &grammar, const std::string &text) {
    llama_grammar *g = llama_grammar_init_impl(nullptr, grammar.c_str(), "root", false, nullptr, 0,
                                               nullptr, 0);
    if (!g) return -1;
    int ok = 1;
    for (uint32_t cp : code_points(text)) {
        llama_grammar_accept(g, cp);
        if (llama_grammar_get_stacks(g).empty()) {
            ok = 0;
            break;
        }
    }
    if (ok) {
        ok = 0;
        for (const auto &st : llama_grammar_get_stacks(g))
            if (st.empty()) ok = 1;
    }
    llama_grammar_free_impl(g);
    return ok;
}

static std::string schema_text(const common_json &c) {
    const common_json &s = c.at("schema");
    return s.is_string() ? s.get<std::string>() : s.dump();
}

static int make_refs(const char *cases_path, const char *out_path) {
    common_json cases = common_json::parse(read_all(cases_path));
    common_json out = common_json::array();
    for (const auto &c : cases) {
        std::string name = c.at("name").get<std::string>();
        common_json r = common_json::object();
        r["name"] = name;
        r["schema"] = schema_text(c);
        /* where Quarrel fails on purpose (llama.cpp would accept any string, or an odd language):
         * a part of Quarrel's message, copied for the ctest */
        if (c.contains("quarrel_error")) r["quarrel_error"] = c.at("quarrel_error").get<std::string>();
        std::string grammar, error;
        try {
            grammar = json_schema_to_grammar(common_json::parse(schema_text(c)), true);
        } catch (const std::exception &e) {
            error = e.what();
        }
        if (error.empty()) r["grammar"] = grammar;
        else r["error"] = error;
        common_json insts = common_json::array();
        for (const auto &inst : c.at("instances")) {
            std::string text = inst.get<std::string>();
            common_json i = common_json::object();
            i["text"] = text;
            if (error.empty()) {
                int a = grammar_accepts(grammar, text);
                if (a < 0) {
                    fprintf(stderr, "%s: llama.cpp's grammar does not parse\n", name.c_str());
                    return 1;
                }
                i["accepted"] = a == 1;
            }
            insts.push_back(i);
        }
        r["instances"] = insts;
        out.push_back(r);
        fprintf(stderr, "%-32s %s\n", name.c_str(), error.empty() ? "ok" : "error");
    }
    std::ofstream f(out_path, std::ios::binary);
    f << out.dump(1) << "\n";
    return 0;
}

static int check(const char *refs_path, const char *grammars_path) {
    common_json refs = common_json::parse(read_all(refs_path));
    common_json grammars = common_json::parse(read_all(grammars_path));
    int bad = 0, n_inst = 0;
    for (const auto &r : refs) {
        std::string name = r.at("name").get<std::string>();
        bool ref_ok = r.contains("grammar");
        bool have = grammars.contains(name) && grammars.at(name).is_string();
        if (r.contains("quarrel_error")) {
            if (have) fprintf(stderr, "%s: ours converts, expected to fail\n", name.c_str());
            bad += have;
            continue;
        }
        if (!ref_ok || !have) {
            if (ref_ok != have)
                fprintf(stderr, "%s: llama.cpp %s, ours %s\n", name.c_str(),
                        ref_ok ? "converts" : "fails", have ? "converts" : "fails");
            continue;
        }
        std::string g = grammars.at(name).get<std::string>();
        for (const auto &inst : r.at("instances")) {
            std::string text = inst.at("text").get<std::string>();
            bool want = inst.at("accepted").get<bool>();
            int got = grammar_accepts(g, text);
            n_inst++;
            if (got != (want ? 1 : 0)) {
                bad++;
                fprintf(stderr, "%s: %s: llama.cpp %d, ours %d\n", name.c_str(), text.c_str(), want, got);
            }
        }
    }
    fprintf(stderr, "%d instances, %d differ\n", n_inst, bad);
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    try {
        if (argc == 4 && std::string(argv[1]) == "--check") return check(argv[2], argv[3]);
        if (argc == 3) return make_refs(argv[1], argv[2]);
    } catch (const std::exception &e) {
        fprintf(stderr, "mk_schema_refs: %s\n", e.what());
        return 1;
    }
    fprintf(stderr, "usage: mk_schema_refs CASES.json REFS.json | --check REFS.json GRAMMARS.json\n");
    return 2;
}
