// peer_schema_to_grammar.cpp - prints llama.cpp's grammar for the JSON schema read from stdin,
// through the peer's own converter (json_schema_to_grammar, exported by libllama-common.so).
// mk_grammar_refs.py builds and calls it for the schema cases; not part of the CMake build:
//   B=/tmp/peer/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
//   g++ -std=c++17 -I/tmp/llama-src/common -I/tmp/llama-src/include -I/tmp/llama-src/ggml/include \
//       -I/tmp/llama-src/vendor peer_schema_to_grammar.cpp -o s2g -L$B -lllama-common -Wl,-rpath,$B
#include "json-schema-to-grammar.h"
#include <iostream>
#include <sstream>
int main() {
    std::stringstream ss; ss << std::cin.rdbuf();
    std::cout << json_schema_to_grammar(common_json::parse(ss.str()));
}
