//! Browser binding (later issue).
