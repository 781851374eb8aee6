#ifndef HERALD_CFASTCGI_SHIM_H
#define HERALD_CFASTCGI_SHIM_H
#include <fcgiapp.h>

/* The connection fd of a request: parked streams are written without libfcgi. */
static inline int herald_fcgx_ipc_fd(const FCGX_Request *request) { return request->ipcFd; }
/* The FastCGI request id nginx chose, needed to frame records for a parked stream. */
static inline int herald_fcgx_request_id(const FCGX_Request *request) { return request->requestId; }
#endif
