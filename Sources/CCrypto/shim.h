// OpenSSL's libcrypto (Debian libssl-dev): HMAC-SHA-256, SHA-256 and the constant-time compare.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
