#ifndef XHBNN_H
#define XHBNN_H
#endif
