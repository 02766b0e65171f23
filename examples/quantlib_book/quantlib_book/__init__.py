"""A QuantLib pricing engine on htcgrid: a book of equity options, swaps and bonds priced with
QuantLib's engines, with Greeks (README.md). ``handler`` is the grid's entry point; ``client``
prices the sample book and checks every price."""
