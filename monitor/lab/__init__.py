"""The clinical network lab: plays a ward scenario for real in network namespaces and records it.

``scenario`` (the YAML format), ``netns`` (namespaces, bridge, cleanup), ``runner`` (the play),
``events`` (incidents with real tools), ``verify`` (capture against truth with tshark), and one
module per device behaviour: ``dicom``, ``hl7``, ``mqtt``, ``https``, ``chatter``; ``agent``
runs one behaviour inside a namespace. See docs/lab.md.
"""
