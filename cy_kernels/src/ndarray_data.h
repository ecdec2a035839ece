/* The data address of a NumPy array without NumPy's headers or the buffer protocol, which entered
 * CPython's Limited API only in 3.11: NumPy's array object starts with PyObject_HEAD and then the
 * `char *data` pointer (PyArrayObject_fields), a layout NumPy has kept through 1.x and 2.x. The
 * module checks it against __array_interface__ when it is imported (_xhbnn.pyx, _check_layout). */
#ifndef XHBNN_NDARRAY_DATA_H
#define XHBNN_NDARRAY_DATA_H

#include <Python.h>

typedef struct {
    PyObject_HEAD
    char *data;
} hbnn_ndarray_head;

static inline void *hbnn_ndarray_data(PyObject *a) { return ((hbnn_ndarray_head *)a)->data; }

#endif
