/* page_asset.h - the chat page: src/server/page/ inlined into one HTML document and embedded in
 * the binary at build time (src/server/page/embed.cmake writes page_asset.c in the build
 * directory). http.c serves it at GET /. */
#ifndef QR_SERVER_PAGE_ASSET_H
#define QR_SERVER_PAGE_ASSET_H

#include <stddef.h>

extern const unsigned char srv_page_html[]; /* UTF-8, not NUL-terminated */
extern const size_t srv_page_html_len;
extern const char srv_page_etag[]; /* a quoted strong ETag: a hash of the bytes */

#endif
